/**
 * The bxchange client SDK for Node: end-to-end encryption of the files a
 * mailbox exchanges (DESIGN §4c). Used by the CLI (`keygen`, later `send` and
 * `fetch`) and by regional applications; it imports nothing from the server.
 */
export {
  HEADER_BYTES,
  MIN_PASSPHRASE_LENGTH,
  SdkError,
  UnlockedPrivateKey,
  decryptFile,
  encryptFileToSpool,
  generateMailboxKey,
  privateKeyIds,
  recipientKeyIds,
  unlockPrivateKey,
  type DecryptResult,
  type GeneratedMailboxKey,
  type SdkErrorCode,
  type SpoolResult,
} from './openpgp.ts';
