ALTER TABLE "envelopes" ADD COLUMN "computed" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "envelopes" ADD COLUMN "clock" jsonb;--> statement-breakpoint
ALTER TABLE "envelopes" ADD COLUMN "purged_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "envelopes" ADD COLUMN "feed_xid" "xid8" DEFAULT pg_current_xact_id() NOT NULL;--> statement-breakpoint
CREATE INDEX "envelopes_feed_idx" ON "envelopes" USING btree ("feed_xid","id");--> statement-breakpoint
CREATE INDEX "envelopes_retain_idx" ON "envelopes" USING btree ("retain_until");