// A stand-in identity provider for trying user identity by hand (USER_JWT_*):
//   node scripts/user-token.mjs keys > user-keys.json       an Ed25519 key pair (keep the file private)
//   node scripts/user-token.mjs public user-keys.json        the public JWKS, for USER_JWT_PUBLIC_KEY
//   node scripts/user-token.mjs sign user-keys.json <sub> <audience> [seconds]   a user token (default 1 h)
// A real deployment verifies the tokens of its own provider (USER_JWKS_URL).
import { readFileSync } from "node:fs";
import { exportJWK, generateKeyPair, importJWK, SignJWT } from "jose";

const [command, file, sub, audience, seconds] = process.argv.slice(2);
const read = () => JSON.parse(readFileSync(file ?? "", "utf8"));

if (command === "keys") {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const kid = new Date().toISOString().slice(0, 10);
  console.log(JSON.stringify({ private: { ...(await exportJWK(privateKey)), kid, alg: "EdDSA" }, public: { ...(await exportJWK(publicKey)), kid, alg: "EdDSA" } }));
} else if (command === "public" && file) {
  console.log(JSON.stringify({ keys: [read().public] }));
} else if (command === "sign" && file && sub && audience) {
  const keys = read();
  const token = await new SignJWT({ sub })
    .setProtectedHeader({ alg: "EdDSA", kid: keys.private.kid })
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + Number(seconds ?? 3600))
    .sign(await importJWK(keys.private, "EdDSA"));
  console.log(token);
} else {
  console.error("usage: user-token.mjs keys | public <keys.json> | sign <keys.json> <sub> <audience> [seconds]");
  process.exit(2);
}
