CREATE TABLE "sftp_send_folders" (
	"mailbox_address" text NOT NULL,
	"name" text NOT NULL,
	"envelope_id" uuid,
	"state" text NOT NULL,
	"descriptor" text,
	"file_hints" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"receipt_id" uuid,
	"last_error" jsonb,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "sftp_send_folders_mailbox_address_name_pk" PRIMARY KEY("mailbox_address","name"),
	CONSTRAINT "sftp_send_folders_state" CHECK ("sftp_send_folders"."state" IN ('editing', 'submitted', 'refused')),
	CONSTRAINT "sftp_send_folders_submitted_has_draft" CHECK ("sftp_send_folders"."state" = 'editing' OR "sftp_send_folders"."envelope_id" IS NOT NULL)
);
--> statement-breakpoint
ALTER TABLE "sftp_send_folders" ADD CONSTRAINT "sftp_send_folders_mailbox_address_mailboxes_address_fk" FOREIGN KEY ("mailbox_address") REFERENCES "public"."mailboxes"("address") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sftp_send_folders" ADD CONSTRAINT "sftp_send_folders_envelope_id_envelopes_id_fk" FOREIGN KEY ("envelope_id") REFERENCES "public"."envelopes"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "sftp_send_folders_envelope_key" ON "sftp_send_folders" USING btree ("envelope_id");