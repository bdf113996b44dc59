/**
 * The bxchange side of the sftp benchmark, as its own process: the real
 * services (embedded default, configured by the BXCHANGE_* environment like
 * `bxchange serve`), the HTTP app and the SFTP door on free 127.0.0.1 ports.
 * Prints {"ready":true,"port":HTTP,"sftpPort":SFTP} on stdout; stops on SIGTERM.
 */
import { loadConfig } from '../src/config.ts';
import { createServices } from '../src/services.ts';
import { buildApp } from '../src/app.ts';
import { sftpDeps, startSftpServer } from '../src/sftp/server.ts';

const config = loadConfig();
const services = await createServices(config);
if (services.database.kind === 'pglite') await services.database.migrate();
const app = await buildApp({ services });
await app.listen({ host: '127.0.0.1', port: 0 });
const quiet = { info() {}, warn(o: object, m: string) { process.stderr.write(`${m} ${JSON.stringify(o)}\n`); }, error(o: object, m: string) { process.stderr.write(`${m} ${JSON.stringify(o)}\n`); } };
const door = await startSftpServer(config.sftp!, sftpDeps(services, quiet));
process.stdout.write(`${JSON.stringify({ ready: true, port: (app.server.address() as { port: number }).port, sftpPort: door.port })}\n`);
const stop = async () => {
  await door.close();
  await app.close();
  await services.close();
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
