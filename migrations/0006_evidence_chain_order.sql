ALTER TABLE "evidence" ADD COLUMN "seq" bigserial NOT NULL;--> statement-breakpoint
CREATE INDEX "evidence_envelope_seq_idx" ON "evidence" USING btree ("envelope_id","seq");