ALTER TABLE "files" DROP COLUMN "hash_state";--> statement-breakpoint
ALTER TABLE "files" DROP COLUMN "hash_offset";