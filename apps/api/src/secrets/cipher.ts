import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** Domain separation: the signing key and the secrets key never coincide, even when derived from one file. */
const HKDF_SALT = 'machete/secrets';
const HKDF_INFO = 'aes-256-gcm v1';

export interface Sealed {
  nonce: string;
  /** Ciphertext then tag, base64. */
  ciphertext: string;
  keyId: string;
}

export interface SecretCipher {
  /** Fingerprint of the key, stored beside each row (a hash of the key, not the key). */
  readonly keyId: string;
  seal(name: string, value: string): Sealed;
  /** Throws when the row was sealed under another key or name, or was tampered with. */
  open(name: string, sealed: Sealed): string;
}

/**
 * AES-256-GCM keyed by HKDF-SHA256 over the key material (the signing key, or
 * MACHETE_SECRETS_KEY_FILE). The secret's name is the additional data, so a ciphertext
 * moved to another row fails authentication instead of decrypting.
 */
export function createSecretCipher(material: Uint8Array): SecretCipher {
  if (material.length < 32) throw new Error('secrets key material must be at least 32 bytes');
  const key = Buffer.from(hkdfSync('sha256', material, HKDF_SALT, HKDF_INFO, 32));
  const keyId = createHash('sha256').update('machete key id').update(key).digest('hex').slice(0, 16);
  return {
    keyId,
    seal(name, value) {
      const nonce = randomBytes(NONCE_BYTES);
      const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
      c.setAAD(Buffer.from(name, 'utf8'));
      const body = Buffer.concat([c.update(value, 'utf8'), c.final(), c.getAuthTag()]);
      return { nonce: nonce.toString('base64'), ciphertext: body.toString('base64'), keyId };
    },
    open(name, sealed) {
      if (sealed.keyId.length !== keyId.length || !timingSafeEqual(Buffer.from(sealed.keyId), Buffer.from(keyId))) {
        throw new Error('secret was encrypted with another key');
      }
      const nonce = Buffer.from(sealed.nonce, 'base64');
      const body = Buffer.from(sealed.ciphertext, 'base64');
      if (nonce.length !== NONCE_BYTES || body.length < TAG_BYTES) throw new Error('secret row is malformed');
      const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
      d.setAAD(Buffer.from(name, 'utf8'));
      d.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([d.update(body.subarray(0, body.length - TAG_BYTES)), d.final()]).toString('utf8');
    },
  };
}
