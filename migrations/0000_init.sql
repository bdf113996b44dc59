CREATE TABLE "audit_events" (
	"seq" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"actor" text,
	"action" text NOT NULL,
	"subject" text,
	"data" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"prev_hash" text,
	"hash" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "credentials" (
	"id" uuid PRIMARY KEY NOT NULL,
	"principal_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"secret_hash" text,
	"public_key" text,
	"fingerprint" text,
	"label" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"last_used_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "entities" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"name_fr" text NOT NULL,
	"name_nl" text NOT NULL,
	"enterprise_number" text,
	"nis_code" text,
	"parent_id" text,
	"valid_from" date,
	"valid_until" date,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "entities_validity" CHECK ("entities"."valid_until" IS NULL OR "entities"."valid_from" IS NULL OR "entities"."valid_from" <= "entities"."valid_until")
);
--> statement-breakpoint
CREATE TABLE "envelope_recipients" (
	"envelope_id" uuid NOT NULL,
	"mailbox_address" text NOT NULL,
	"status" text NOT NULL,
	"delivered_at" timestamp with time zone,
	"retrieved_at" timestamp with time zone,
	"acknowledged_at" timestamp with time zone,
	CONSTRAINT "envelope_recipients_envelope_id_mailbox_address_pk" PRIMARY KEY("envelope_id","mailbox_address")
);
--> statement-breakpoint
CREATE TABLE "envelopes" (
	"id" uuid PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"type_version" text NOT NULL,
	"from_mailbox" text NOT NULL,
	"status" text NOT NULL,
	"metadata" jsonb NOT NULL,
	"in_reply_to" uuid,
	"created_by" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"submitted_at" timestamp with time zone,
	"deadline" date,
	"retain_until" date
);
--> statement-breakpoint
CREATE TABLE "evidence" (
	"id" uuid PRIMARY KEY NOT NULL,
	"envelope_id" uuid NOT NULL,
	"event_type" text NOT NULL,
	"event_time" timestamp with time zone NOT NULL,
	"recipient" text,
	"canonical" "bytea" NOT NULL,
	"signature" "bytea" NOT NULL,
	"prev_hash" text
);
--> statement-breakpoint
CREATE TABLE "files" (
	"id" uuid PRIMARY KEY NOT NULL,
	"envelope_id" uuid NOT NULL,
	"name" text NOT NULL,
	"media_type" text NOT NULL,
	"role" text,
	"size" bigint,
	"sha256" text,
	"plaintext_sha256" text,
	"storage_key" text NOT NULL,
	"recipient_key_ids" text[],
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "mailboxes" (
	"address" text PRIMARY KEY NOT NULL,
	"entity_id" text NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "memberships" (
	"principal_id" uuid NOT NULL,
	"mailbox_address" text NOT NULL,
	"roles" text[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "memberships_principal_id_mailbox_address_pk" PRIMARY KEY("principal_id","mailbox_address")
);
--> statement-breakpoint
CREATE TABLE "principals" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"kind" text NOT NULL,
	"display_name" text,
	"oidc_subject" text,
	"capabilities" text[] DEFAULT '{}'::text[] NOT NULL,
	"active" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deactivated_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "credentials" ADD CONSTRAINT "credentials_principal_id_principals_id_fk" FOREIGN KEY ("principal_id") REFERENCES "public"."principals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "entities" ADD CONSTRAINT "entities_parent_id_entities_id_fk" FOREIGN KEY ("parent_id") REFERENCES "public"."entities"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "envelope_recipients" ADD CONSTRAINT "envelope_recipients_envelope_id_envelopes_id_fk" FOREIGN KEY ("envelope_id") REFERENCES "public"."envelopes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "envelope_recipients" ADD CONSTRAINT "envelope_recipients_mailbox_address_mailboxes_address_fk" FOREIGN KEY ("mailbox_address") REFERENCES "public"."mailboxes"("address") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "envelopes" ADD CONSTRAINT "envelopes_from_mailbox_mailboxes_address_fk" FOREIGN KEY ("from_mailbox") REFERENCES "public"."mailboxes"("address") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "envelopes" ADD CONSTRAINT "envelopes_in_reply_to_envelopes_id_fk" FOREIGN KEY ("in_reply_to") REFERENCES "public"."envelopes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "envelopes" ADD CONSTRAINT "envelopes_created_by_principals_id_fk" FOREIGN KEY ("created_by") REFERENCES "public"."principals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "files" ADD CONSTRAINT "files_envelope_id_envelopes_id_fk" FOREIGN KEY ("envelope_id") REFERENCES "public"."envelopes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "mailboxes" ADD CONSTRAINT "mailboxes_entity_id_entities_id_fk" FOREIGN KEY ("entity_id") REFERENCES "public"."entities"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "memberships" ADD CONSTRAINT "memberships_principal_id_principals_id_fk" FOREIGN KEY ("principal_id") REFERENCES "public"."principals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "memberships" ADD CONSTRAINT "memberships_mailbox_address_mailboxes_address_fk" FOREIGN KEY ("mailbox_address") REFERENCES "public"."mailboxes"("address") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "credentials_secret_hash_key" ON "credentials" USING btree ("secret_hash");--> statement-breakpoint
CREATE UNIQUE INDEX "credentials_fingerprint_key" ON "credentials" USING btree ("kind","fingerprint");--> statement-breakpoint
CREATE INDEX "credentials_principal_idx" ON "credentials" USING btree ("principal_id");--> statement-breakpoint
CREATE UNIQUE INDEX "entities_enterprise_number_key" ON "entities" USING btree ("enterprise_number");--> statement-breakpoint
CREATE UNIQUE INDEX "entities_nis_code_key" ON "entities" USING btree ("nis_code");--> statement-breakpoint
CREATE INDEX "envelope_recipients_mailbox_idx" ON "envelope_recipients" USING btree ("mailbox_address","envelope_id");--> statement-breakpoint
CREATE INDEX "envelopes_from_idx" ON "envelopes" USING btree ("from_mailbox","id");--> statement-breakpoint
CREATE INDEX "evidence_envelope_idx" ON "evidence" USING btree ("envelope_id","event_time");--> statement-breakpoint
CREATE UNIQUE INDEX "files_storage_key_key" ON "files" USING btree ("storage_key");--> statement-breakpoint
CREATE INDEX "files_envelope_idx" ON "files" USING btree ("envelope_id");--> statement-breakpoint
CREATE UNIQUE INDEX "mailboxes_entity_name_key" ON "mailboxes" USING btree ("entity_id","name");--> statement-breakpoint
CREATE INDEX "memberships_mailbox_idx" ON "memberships" USING btree ("mailbox_address");--> statement-breakpoint
CREATE UNIQUE INDEX "principals_name_key" ON "principals" USING btree ("name");--> statement-breakpoint
CREATE UNIQUE INDEX "principals_oidc_subject_key" ON "principals" USING btree ("oidc_subject");