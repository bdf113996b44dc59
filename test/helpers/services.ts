/**
 * Which real services the tests may use. A service is "configured" by the same
 * variables the server reads (DATABASE_URL, S3_*). Without it a newcomer's
 * `npm test` skips the suites that need it, by name and with the reason; with
 * CI=true a missing service fails the run instead.
 */
import type { Test } from 'tap';
import { loadConfig, type S3Config } from '../../src/config.ts';

export const inCI = /^(1|true)$/i.test(process.env.CI ?? '');

export interface ServiceProbe<T> {
  name: string;
  value: T | undefined;
  reason: string;
}

export function postgresService(): ServiceProbe<string> {
  const value = process.env.DATABASE_URL?.trim() || undefined;
  return { name: 'PostgreSQL', value, reason: 'DATABASE_URL is not set' };
}

export function s3Service(): ServiceProbe<S3Config> {
  let value: S3Config | undefined;
  try {
    value = loadConfig(process.env).s3;
  } catch {
    value = undefined;
  }
  return { name: 'S3', value, reason: 'S3_ENDPOINT / S3_BUCKET are not set' };
}

/**
 * Runs `body` as a subtest named after the service when the service is
 * configured; otherwise skips it (newcomer) or fails (CI=true).
 */
export async function withService<T>(
  t: Test,
  probe: ServiceProbe<T>,
  label: string,
  body: (t: Test, value: T) => Promise<void> | void,
): Promise<void> {
  const name = `${label} [${probe.name}]`;
  if (probe.value === undefined) {
    if (inCI) {
      await t.test(name, async (tt) => {
        tt.fail(`${probe.name} is required when CI=true: ${probe.reason}`);
      });
    } else {
      await t.test(name, { skip: `${probe.name} not configured: ${probe.reason}` }, () => {});
    }
    return;
  }
  const value = probe.value;
  await t.test(name, (tt) => body(tt, value));
}
