-- Servers keep the bearer tokens they have checked in memory (db/credential-cache.ts)
-- and must forget them the moment a credential, a principal or a membership
-- changes, whoever changed it (another node, the admin CLI, plain SQL). Each
-- statement that may change what a token lookup returns notifies the channel
-- bx_credentials when its transaction commits; listeners drop their cache.
-- touchToken's updates (last_used_at only) do not notify: they change nothing
-- that authorises a request.
CREATE FUNCTION bx_notify_credentials_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bx_credentials', TG_TABLE_NAME);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER credentials_notify
  AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF principal_id, kind, secret_hash, fingerprint, expires_at, revoked_at ON credentials
  FOR EACH STATEMENT EXECUTE FUNCTION bx_notify_credentials_changed();
--> statement-breakpoint
CREATE TRIGGER principals_notify
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON principals
  FOR EACH STATEMENT EXECUTE FUNCTION bx_notify_credentials_changed();
--> statement-breakpoint
CREATE TRIGGER memberships_notify
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON memberships
  FOR EACH STATEMENT EXECUTE FUNCTION bx_notify_credentials_changed();
