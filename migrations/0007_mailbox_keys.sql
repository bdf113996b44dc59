CREATE TABLE "mailbox_keys" (
	"id" uuid PRIMARY KEY NOT NULL,
	"mailbox_address" text NOT NULL,
	"fingerprint" text NOT NULL,
	"key_id" text NOT NULL,
	"encryption_key_ids" text[] NOT NULL,
	"public_key" text NOT NULL,
	"private_key" text,
	"state" text NOT NULL,
	"key_created_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"retired_at" timestamp with time zone,
	"private_key_at" timestamp with time zone,
	CONSTRAINT "mailbox_keys_state" CHECK ("mailbox_keys"."state" IN ('active', 'retired'))
);
--> statement-breakpoint
ALTER TABLE "mailbox_keys" ADD CONSTRAINT "mailbox_keys_mailbox_address_mailboxes_address_fk" FOREIGN KEY ("mailbox_address") REFERENCES "public"."mailboxes"("address") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "mailbox_keys_fingerprint_key" ON "mailbox_keys" USING btree ("fingerprint");--> statement-breakpoint
CREATE UNIQUE INDEX "mailbox_keys_active_key" ON "mailbox_keys" USING btree ("mailbox_address") WHERE "mailbox_keys"."state" = 'active';--> statement-breakpoint
CREATE INDEX "mailbox_keys_mailbox_idx" ON "mailbox_keys" USING btree ("mailbox_address","created_at");