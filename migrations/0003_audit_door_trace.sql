ALTER TABLE "audit_events" ADD COLUMN "door" text;--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "trace_id" text;