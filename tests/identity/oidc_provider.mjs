// A real OpenID provider for the identity tests: the npm package `oidc-provider` (a certified
// OpenID Connect implementation) with one confidential client, its own sign-in page and test
// accounts read from a JSON file on every sign-in (a test rewrites the file to change a
// person's `groups` claim between two sign-ins).
//
//   node oidc_provider.mjs CONFIG.json
//
// CONFIG: {"module": ".../node_modules/oidc-provider/lib/index.js", "port": 4100,
//          "client_id": "...", "client_secret": "...", "redirect_uris": [...],
//          "post_logout_redirect_uris": [...], "accounts_file": ".../accounts.json",
//          "logout": true, "userinfo_only": false}
// accounts.json: {"<sub>": {"login": "...", "password": "...", "email": "...",
//                 "email_verified": true, "name": "...", "groups": [...], "tamper": "aud"}}
//
// `tamper` makes the token endpoint hand out an ID token whose `aud` (or `exp`, `iss`, `nonce`)
// is wrong but whose signature is valid (re-signed with the provider's own key): the relying
// party must refuse it on the claim, not on the signature. `sig` keeps every claim right but
// signs with another key under the provider's key id: refused on the signature (JWKS).
import crypto from 'node:crypto';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { default: Provider } = await import(pathToFileURL(config.module).href);
const issuer = `http://127.0.0.1:${config.port}`;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-signing-key', alg: 'RS256', use: 'sig' };
const { privateKey: strangerKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });

function accounts() {
  return JSON.parse(fs.readFileSync(config.accounts_file, 'utf8'));
}

function html(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: config.redirect_uris,
    post_logout_redirect_uris: config.post_logout_redirect_uris || [],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingJwk] },
  cookies: { keys: ['backline-test-provider-cookie-key'] },
  pkce: { required: () => true }, // a relying party that does not send PKCE is refused
  // scope claims (email, groups) in the ID token, as Okta/Entra do; or only at userinfo
  conformIdTokenClaims: config.userinfo_only === true,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: config.logout !== false },
  },
  async findAccount(ctx, sub) {
    const account = accounts()[sub];
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: account.email,
          email_verified: account.email_verified !== false,
          name: account.name,
          preferred_username: account.login,
          groups: account.groups || [],
        };
      },
    };
  },
  ttl: { IdToken: 3600, AccessToken: 3600, Interaction: 3600, Session: 3600, Grant: 3600, AuthorizationCode: 60 },
});

function loginPage(uid, error = '', login = '') {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Test IdP · sign in</title>
<style>body{font-family:sans-serif;background:#eef2f7;display:flex;justify-content:center;padding-top:80px}
form{background:#fff;padding:28px 32px;border-radius:8px;box-shadow:0 2px 8px rgba(0,0,0,.12);width:300px}
label{display:block;margin:12px 0 4px}input{width:100%;padding:7px;box-sizing:border-box}
button{margin-top:18px;width:100%;padding:9px;background:#1f6feb;color:#fff;border:0;border-radius:5px}
.err{color:#b00020}</style></head><body>
<form method="post" action="/interaction/${html(uid)}/login" autocomplete="off">
<h1>Test IdP</h1>${error ? `<p class="err" role="alert">${html(error)}</p>` : ''}
<label for="login">Username</label><input id="login" name="login" value="${html(login)}" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password">
<button type="submit">Sign in to Test IdP</button></form></body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function finish(ctx, details, sub) {
  const grant = new provider.Grant({ accountId: sub, clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope || 'openid'));
  const grantId = await grant.save();
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
    login: { accountId: sub },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(returnTo);
}

// the provider's own sign-in page (login and consent in one step)
provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === 'GET') {
    if (details.prompt.name !== 'login' && details.session?.accountId) {
      return finish(ctx, details, details.session.accountId);
    }
    ctx.type = 'html';
    ctx.body = loginPage(details.uid);
    return undefined;
  }
  const form = await readForm(ctx.req);
  const login = form.get('login') || '';
  const entry = Object.entries(accounts()).find(([, a]) => a.login === login);
  if (!entry || entry[1].password !== form.get('password')) {
    ctx.type = 'html';
    ctx.status = 401;
    ctx.body = loginPage(details.uid, 'Wrong username or password.', login);
    return undefined;
  }
  return finish(ctx, details, entry[0]);
});

function b64url(value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

// test-only: a signed ID token with one wrong claim for accounts marked `tamper`
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== '/token' || !ctx.body || !ctx.body.id_token) return;
  const [header, payload] = ctx.body.id_token.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  const tamper = (accounts()[claims.sub] || {}).tamper;
  if (!tamper) return;
  const now = Math.floor(Date.now() / 1000);
  if (tamper === 'aud') claims.aud = 'some-other-application';
  if (tamper === 'aud-azp') Object.assign(claims, { aud: ['some-other-application'], azp: config.client_id });
  if (tamper === 'exp') Object.assign(claims, { iat: now - 7200, exp: now - 3600 });
  if (tamper === 'iss') claims.iss = 'http://127.0.0.1:1/not-the-issuer';
  if (tamper === 'nonce') claims.nonce = 'a-nonce-from-another-sign-in';
  const input = `${header}.${b64url(claims)}`;
  const key = tamper === 'sig' ? strangerKey : privateKey;
  const signature = crypto.sign('sha256', Buffer.from(input), key).toString('base64url');
  ctx.body = { ...ctx.body, id_token: `${input}.${signature}` };
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
