-- The export feed orders envelopes by the transaction that last changed them
-- (envelopes.feed_xid). Any change to an envelope, its recipients or its files
-- moves it to the transaction doing the change.
CREATE FUNCTION bx_touch_envelope_feed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.feed_xid := pg_current_xact_id();
  RETURN NEW;
END $$;
--> statement-breakpoint
CREATE TRIGGER envelopes_feed_touch BEFORE UPDATE ON envelopes
  FOR EACH ROW EXECUTE FUNCTION bx_touch_envelope_feed();
--> statement-breakpoint
CREATE FUNCTION bx_touch_parent_envelope_feed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE envelopes SET feed_xid = pg_current_xact_id()
    WHERE id = NEW.envelope_id AND feed_xid IS DISTINCT FROM pg_current_xact_id();
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER envelope_recipients_feed_touch AFTER INSERT OR UPDATE ON envelope_recipients
  FOR EACH ROW EXECUTE FUNCTION bx_touch_parent_envelope_feed();
--> statement-breakpoint
CREATE TRIGGER files_feed_touch AFTER INSERT OR UPDATE ON files
  FOR EACH ROW EXECUTE FUNCTION bx_touch_parent_envelope_feed();
