ALTER TABLE "files" ADD COLUMN "declared_size" bigint;--> statement-breakpoint
ALTER TABLE "files" ADD COLUMN "hash_state" "bytea";--> statement-breakpoint
ALTER TABLE "files" ADD COLUMN "hash_offset" bigint;--> statement-breakpoint
ALTER TABLE "files" ADD COLUMN "uploaded_by" uuid;--> statement-breakpoint
ALTER TABLE "files" ADD CONSTRAINT "files_uploaded_by_principals_id_fk" FOREIGN KEY ("uploaded_by") REFERENCES "public"."principals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "envelope_recipients_inbox_idx" ON "envelope_recipients" USING btree ("mailbox_address","delivered_at","envelope_id");--> statement-breakpoint
CREATE INDEX "envelopes_outbox_idx" ON "envelopes" USING btree ("from_mailbox","created_at","id");--> statement-breakpoint
CREATE INDEX "envelopes_status_created_idx" ON "envelopes" USING btree ("status","created_at");