// A real OpenID Provider for zerogate's SSO integration tests: npm `oidc-provider` 9 (panva),
// configured entirely from the environment by tests/oidc/fixture.py. Test only: it uses the
// library's built-in development login and consent forms, which accept any password.
//
// Environment:
//   OIDC_MODULES        directory holding node_modules/oidc-provider (scripts/install-oidc-provider.sh)
//   OIDC_PORT           TCP port; the provider listens on 127.0.0.1 only and its issuer is
//                       http://127.0.0.1:<port>
//   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET   the one confidential client (client_secret_basic)
//   OIDC_REDIRECT_URIS  comma-separated redirect URIs registered for that client
//   OIDC_USERS          JSON object: login name -> claims ({"alice": {"email": ..., "groups": [...]}})
//   OIDC_JWKS           optional JSON JWK Set with private keys to sign with (key-rotation tests);
//                       without it the library's development keys are used
//   OIDC_ID_TOKEN_ALG   ID token signing alg of the client (default RS256, ES256 for EC keys)
//   OIDC_CONFORM        "1": conformIdTokenClaims (ID token carries only sub; claims via userinfo)
//   OIDC_COOKIE_KEY     key that signs the provider's cookies
//
// Prints "READY <issuer>" on stdout once it accepts connections.
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

function env(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    if (fallback === undefined) throw new Error(`${name} is required`);
    return fallback;
  }
  return value;
}

// The package lives in a cache directory outside the repository, so resolve it from there
// rather than from this file's location.
const modules = env('OIDC_MODULES');
const entry = createRequire(path.join(modules, 'package.json')).resolve('oidc-provider');
const { default: Provider } = await import(pathToFileURL(entry).href);

const port = Number(env('OIDC_PORT'));
const issuer = `http://127.0.0.1:${port}`;
const users = JSON.parse(env('OIDC_USERS'));
const jwks = process.env.OIDC_JWKS ? JSON.parse(process.env.OIDC_JWKS) : undefined;

const configuration = {
  clients: [{
    client_id: env('OIDC_CLIENT_ID'),
    client_secret: env('OIDC_CLIENT_SECRET'),
    redirect_uris: env('OIDC_REDIRECT_URIS').split(',').filter(Boolean),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: env('OIDC_ID_TOKEN_ALG', 'RS256'),
    require_auth_time: true,
  }],
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  async findAccount(ctx, id) {
    if (!Object.hasOwn(users, id)) return undefined;
    return { accountId: id, claims: async () => ({ ...users[id], sub: id }) };
  },
  pkce: { required: () => true },
  // false: the ID token carries the claims of the granted scopes, as most enterprise IdPs do.
  conformIdTokenClaims: process.env.OIDC_CONFORM === '1',
  cookies: { keys: [env('OIDC_COOKIE_KEY', 'test-only-cookie-key')] },
  features: { devInteractions: { enabled: true } },
};
if (jwks) configuration.jwks = jwks;

const provider = new Provider(issuer, configuration);
// Errors the provider answers with a 500 would otherwise vanish; the fixture keeps stderr.
provider.on('server_error', (ctx, error) => console.error('server_error', error));

// provider.listen() would bind every interface; tests stay on loopback.
const server = http.createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`READY ${issuer}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
