// A real OpenID Connect provider for the test suite, on plain http loopback (see README.md).
//
//   node provider.mjs --port=0 --client-id=billing-desk --client-secret=s3cret --app-url=http://127.0.0.1:8501
//
// (`--name=value`: parseArgs refuses a separate value that starts with "-", as a random secret may.)
//
// Every option can come from the environment instead (OIDC_PORT, OIDC_HOST, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
// OIDC_APP_URLS comma-separated, OIDC_PASSWORD, OIDC_ACCOUNTS_FILE). With port 0 the system picks a free port.
// Once serving, it prints one line to stdout: "oidc-provider listening on <issuer>".
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: process.env.OIDC_HOST || '127.0.0.1' },
    port: { type: 'string', default: process.env.OIDC_PORT || '0' },
    'client-id': { type: 'string', default: process.env.OIDC_CLIENT_ID || 'billing-desk' },
    'client-secret': { type: 'string', default: process.env.OIDC_CLIENT_SECRET || 'billing-desk-test-secret' },
    'app-url': {
      type: 'string', multiple: true, default: (process.env.OIDC_APP_URLS || '').split(',').filter(Boolean),
    },
    password: { type: 'string', default: process.env.OIDC_PASSWORD || 'oidc-demo' },
    accounts: { type: 'string', default: process.env.OIDC_ACCOUNTS_FILE || '' },
  },
});

if (!args['app-url'].length) {
  console.error('provider.mjs: give the app URL(s) with --app-url or OIDC_APP_URLS (e.g. http://127.0.0.1:8501)');
  process.exit(2);
}

// The people of the test suite. Each signs in with the one password (--password, default "oidc-demo").
// An accounts file (JSON, same shape) adds people or replaces these by username.
const ACCOUNTS = {
  fay: { email: 'fay@example.com', name: 'Fay Finance', groups: ['billing-finance'] },
  sam: { email: 'sam@example.com', name: 'Sam Support', groups: ['billing-support'] },
  ada: { email: 'ada@example.com', name: 'Ada Admin', groups: ['billing-admin', 'billing-support'] },
  nina: { email: 'nina@example.com', name: 'Nina Nogroups', groups: [] },
};
if (args.accounts) Object.assign(ACCOUNTS, JSON.parse(readFileSync(args.accounts, 'utf8')));

const appUrls = args['app-url'].map((url) => url.replace(/\/+$/, ''));
const clientId = args['client-id'];

const escape = (value) => String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// No web fonts or other outside resources: the machines are offline, and a page waiting on them loads late.
function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>${escape(title)}</title>
  <style>
    body { font-family: sans-serif; margin: 40px auto; width: 320px; }
    input, button { display: block; width: 100%; box-sizing: border-box; margin: 8px 0; padding: 8px; font-size: 15px; }
    .error { color: #b00020; }
  </style>
</head>
<body>
  <h1>${escape(title)}</h1>
  ${body}
</body>
</html>`;
}

function loginForm(uid, params, error) {
  const login = params.login_hint ? ` value="${escape(params.login_hint)}"` : ' autofocus';
  return page('Sign-in', `
  <p>Sign in to continue to <strong>${escape(params.client_id)}</strong>.</p>
  ${error ? `<p class="error" role="alert">${escape(error)}</p>` : ''}
  <form autocomplete="off" action="/interaction/${escape(uid)}/login" method="post">
    <label>Username <input required type="text" name="login"${login}></label>
    <label>Password <input required type="password" name="password"></label>
    <button type="submit">Sign-in</button>
  </form>
  <p><a href="/interaction/${escape(uid)}/abort">Cancel</a></p>`);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// Memory storage for the provider's artifacts (sessions, codes, tokens, grants): lost when the process ends.
const storage = new Map();
class MemoryAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    storage.set(this.key(id), payload);
    if (this.model === 'Session') storage.set(`sessionUid:${payload.uid}`, id);
    if (payload.grantId) {
      const grant = storage.get(`grant:${payload.grantId}`) || [];
      grant.push(this.key(id));
      storage.set(`grant:${payload.grantId}`, grant);
    }
    if (payload.userCode) storage.set(`userCode:${payload.userCode}`, id);
    void expiresIn; // the artifacts carry their own exp, which the provider checks
  }

  async find(id) { return storage.get(this.key(id)); }

  async findByUid(uid) { return this.find(storage.get(`sessionUid:${uid}`)); }

  async findByUserCode(userCode) { return this.find(storage.get(`userCode:${userCode}`)); }

  async consume(id) {
    const payload = storage.get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { storage.delete(this.key(id)); }

  async revokeByGrantId(grantId) {
    for (const key of storage.get(`grant:${grantId}`) || []) storage.delete(key);
    storage.delete(`grant:${grantId}`);
  }
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-signing-key', use: 'sig', alg: 'RS256' };

const configuration = {
  adapter: MemoryAdapter,
  jwks: { keys: [signingKey] },
  cookies: {
    keys: [randomBytes(32).toString('hex')],
    // Lax, not the default None: Chromium drops SameSite=None cookies that are not Secure (plain http here).
    long: { signed: true, sameSite: 'lax' },
    short: { signed: true, sameSite: 'lax' },
  },
  clients: [{
    client_id: clientId,
    client_secret: args['client-secret'],
    client_name: 'Billing Desk (tests)',
    redirect_uris: appUrls.map((url) => `${url}/oauth2callback`),
    // Streamlit 1.67's st.logout sends post_logout_redirect_uri = the redirect_uri (/oauth2callback); the app's
    // root is registered as well for other clients.
    post_logout_redirect_uris: appUrls.flatMap((url) => [`${url}/oauth2callback`, `${url}/`]),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  // The claims of each scope; with conformIdTokenClaims off they all go into the ID token (Streamlit's st.user
  // is the ID token's claims: it never calls the userinfo endpoint).
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'groups'],
  },
  conformIdTokenClaims: false,
  async findAccount(ctx, sub) {
    const account = ACCOUNTS[sub];
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, email: account.email, email_verified: true, name: account.name, groups: account.groups };
      },
    };
  },
  // First-party client: consent is given on the person's behalf, so sign-in is one form and no consent page.
  async loadExistingGrant(ctx) {
    const { Grant } = ctx.oidc.provider;
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    const existing = grantId && await Grant.find(grantId);
    if (existing) return existing;
    const grant = new Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = page('Sign out', `
  <p>Do you want to sign out from ${escape(ctx.host)}?</p>
  ${form}
  <button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
  <button type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<p>You are signed out.</p>');
      },
    },
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Sign-in error', Object.entries(out)
      .map(([key, value]) => `<p><strong>${escape(key)}</strong>: ${escape(value)}</p>`).join(''));
  },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 600,
    IdToken: 3600,
    Interaction: 3600,
    Session: 86400,
    Grant: 86400,
  },
};

const server = http.createServer();
server.listen(Number(args.port), args.host, () => {
  const { port } = server.address();
  const issuer = `http://${args.host}:${port}`;
  const provider = new Provider(issuer, configuration);

  provider.on('server_error', (ctx, error) => console.error('server_error', error));

  // The sign-in pages: one form, username and password; no consent page (loadExistingGrant above).
  provider.use(async (ctx, next) => {
    const match = ctx.path.match(/^\/interaction\/([\w-]+)(?:\/(login|abort))?$/);
    if (!match) return next();
    ctx.set('cache-control', 'no-store');
    const [, uid, action] = match;
    const { prompt, params } = await provider.interactionDetails(ctx.req, ctx.res);

    if (action === 'abort') {
      return provider.interactionFinished(ctx.req, ctx.res, {
        error: 'access_denied', error_description: 'End-User aborted interaction',
      }, { mergeWithLastSubmission: false });
    }
    if (action === 'login' && ctx.method === 'POST') {
      const form = await readForm(ctx.req);
      const login = form.get('login') || '';
      if (ACCOUNTS[login] && form.get('password') === args.password) {
        return provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: login } },
          { mergeWithLastSubmission: false });
      }
      ctx.type = 'html';
      ctx.body = loginForm(uid, { ...params, login_hint: login }, 'Unknown username or wrong password.');
      return undefined;
    }
    if (prompt.name !== 'login') ctx.throw(501, `prompt ${prompt.name} is not implemented`);
    ctx.type = 'html';
    ctx.body = loginForm(uid, params);
    return undefined;
  });

  server.on('request', provider.callback());
  console.log(`oidc-provider listening on ${issuer}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
