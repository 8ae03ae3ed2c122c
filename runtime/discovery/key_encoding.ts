/**
 * Discovery keys as file names, byte for byte as Dynamo's file store writes them: the key's
 * UTF-8 bytes percent-encoded with the NON_ALPHANUMERIC set, so every byte except
 * `[A-Za-z0-9]` (including `/ - _ .`) becomes `%XX` with uppercase hex.
 */

/** The longest file name most file systems (ext4, xfs, NFS exports of them) accept, in bytes. */
export const MAX_FILE_NAME_BYTES = 255;

const HEX = "0123456789ABCDEF";
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function isAlphanumeric(byte: number): boolean {
  return (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) ||
    (byte >= 0x61 && byte <= 0x7a);
}

/** `dynamo/backend/generate/1a2b` → `dynamo%2Fbackend%2Fgenerate%2F1a2b`. */
export function encodeKeyForFile(key: string): string {
  let name = "";
  for (const byte of utf8.encode(key)) {
    name += isAlphanumeric(byte)
      ? String.fromCharCode(byte)
      : `%${HEX[byte >> 4]}${HEX[byte & 0xf]}`;
  }
  return name;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  return -1; // Lowercase hex is not what an encoder writes, so such a name is not a key.
}

/**
 * The key a file name stands for, or `undefined` when the name is not exactly what
 * `encodeKeyForFile` would produce (a temp file, an editor's backup, a stray file). Being
 * strict means one key maps to one file name, so two names can never alias one key.
 */
export function decodeKeyFromFile(name: string): string | undefined {
  if (name.length === 0 || name.length > MAX_FILE_NAME_BYTES) return undefined;
  const bytes = new Uint8Array(name.length);
  let n = 0;
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (isAlphanumeric(code)) {
      bytes[n++] = code;
      continue;
    }
    if (code !== 0x25 /* % */ || i + 2 >= name.length) return undefined;
    const hi = hexValue(name.charCodeAt(i + 1));
    const lo = hexValue(name.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return undefined;
    const byte = (hi << 4) | lo;
    // An alphanumeric byte written as %XX is not canonical: the encoder never writes it.
    if (isAlphanumeric(byte)) return undefined;
    bytes[n++] = byte;
    i += 2;
  }
  try {
    return strictUtf8.decode(bytes.subarray(0, n));
  } catch {
    return undefined; // Not UTF-8, so no string key encodes to it.
  }
}
