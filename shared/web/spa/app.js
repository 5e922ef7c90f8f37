// The single-page client of Graph Functions (served at /spa/, docs/on-behalf-of.md).
//
// Signs the person in with Microsoft's MSAL.js (auth code + PKCE, redirect flow, declaring the client
// capability CP1), calls this app's API with their token for api://{client id}/access_as_user, and shows
// their profile (/api/me) and newest mail (/api/me/messages). When the API answers 401 with a claims
// challenge (WWW-Authenticate: Bearer ... error="insufficient_claims", claims="<base64>"), it asks Entra for
// a new token with those claims (an interactive step-up: MFA, a Conditional Access policy) and calls again.
// Everything shown is set as text, never as HTML (mail subjects and names are hostile input).

// MSAL.js is Microsoft's minified browser bundle (index.html loads it first): it defines the global `msal`.
const { InteractionRequiredAuthError, PublicClientApplication } = globalThis.msal;

// Set before a step-up redirect, read after it: a second challenge right after a step-up is shown, not
// followed again (no redirect loop).
const STEPPED_UP = "graph-functions-spa.stepped-up";

const element = (id) => document.getElementById(id);

function show(id, visible = true) {
  element(id).hidden = !visible;
}

function say(text) {
  element("status").textContent = text;
}

function fail(text) {
  element("error").textContent = text;
  show("error", Boolean(text));
}

// The decoded claims of a claims challenge, or null when the header holds none.
export function challengedClaims(header) {
  if (!header) {
    return null;
  }
  const params = {};
  for (const match of header.matchAll(/([A-Za-z_]+)="([^"]*)"/g)) {
    params[match[1]] = match[2];
  }
  if (params.error !== "insufficient_claims" || !params.claims) {
    return null;
  }
  return atob(params.claims);
}

class ApiCallError extends Error {
  constructor(response, body) {
    const error = (body && body.error) || {};
    super(`${response.status} ${error.code || "error"}: ${error.message || response.statusText}`);
    this.status = response.status;
    this.code = error.code;
    this.claims = challengedClaims(response.headers.get("WWW-Authenticate"));
  }
}

async function callApi(path, token) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiCallError(response, body);
  }
  return body;
}

function showProfile(profile) {
  element("profile-name").textContent = profile.displayName || "";
  element("profile-upn").textContent = profile.userPrincipalName || "";
  element("profile-job").textContent = profile.jobTitle || "—";
  show("profile");
}

function showMail(page) {
  const list = element("mail-list");
  list.replaceChildren();
  for (const message of page.value) {
    const item = document.createElement("li");
    const subject = document.createElement("div");
    subject.className = "subject";
    subject.textContent = message.subject || "(no subject)";
    const from = document.createElement("div");
    from.className = "from";
    const sender = message.from || {};
    from.textContent = `${sender.name || sender.address || "unknown sender"} · ${message.receivedDateTime || ""}`;
    item.append(subject, from);
    list.append(item);
  }
  if (!page.value.length) {
    list.textContent = "No mail.";
  }
  show("mail");
}

async function loadConfig() {
  const response = await fetch("/spa/config.json", { headers: { Accept: "application/json" } });
  if (!response.ok) {
    throw new Error("This app has no single-page client configured (SPA_CLIENT_ID).");
  }
  return response.json();
}

async function apiToken(msal, config, account) {
  const request = { scopes: [config.apiScope], account };
  try {
    return (await msal.acquireTokenSilent(request)).accessToken;
  } catch (error) {
    if (error instanceof InteractionRequiredAuthError) {
      await msal.acquireTokenRedirect(request);
      return null; // the page navigates away
    }
    throw error;
  }
}

// Profile and mail with ``token``; a claims challenge leads to an interactive step-up and a new call.
async function load(msal, config, account, token) {
  try {
    say("Calling the API…");
    showProfile(await callApi("/api/me", token));
    try {
      showMail(await callApi("/api/me/messages?top=5", token));
    } catch (error) {
      if (error instanceof ApiCallError && !error.claims) {
        element("mail-list").textContent = `Mail unavailable: ${error.message}`;
        show("mail");
      } else {
        throw error;
      }
    }
    sessionStorage.removeItem(STEPPED_UP);
    say("Signed in. Profile and mail come from Microsoft Graph, through the API acting for you.");
  } catch (error) {
    if (error instanceof ApiCallError && error.claims && !sessionStorage.getItem(STEPPED_UP)) {
      sessionStorage.setItem(STEPPED_UP, "1");
      say("Your organisation asks for an extra sign-in step…");
      await msal.acquireTokenRedirect({ scopes: [config.apiScope], account, claims: error.claims });
      return;
    }
    sessionStorage.removeItem(STEPPED_UP);
    say("The API refused the call.");
    fail(error.message);
  }
}

async function checkAudience(account) {
  const result = element("wrong-audience-result");
  try {
    await callApi("/api/me", account.idToken);
    result.textContent = "Accepted: the API did not check the audience!";
  } catch (error) {
    result.textContent = `Refused as it must be: ${error.message}`;
  }
}

async function main() {
  const config = await loadConfig();
  const msal = new PublicClientApplication({
    auth: {
      clientId: config.clientId,
      authority: config.authority,
      knownAuthorities: config.knownAuthorities,
      redirectUri: `${location.origin}/spa/`,
      postLogoutRedirectUri: `${location.origin}/spa/`,
      clientCapabilities: ["CP1"],
    },
    cache: { cacheLocation: "sessionStorage" },
  });
  await msal.initialize();
  const redirected = await msal.handleRedirectPromise();
  if (redirected && redirected.account) {
    msal.setActiveAccount(redirected.account);
  }
  const account = msal.getActiveAccount() || msal.getAllAccounts()[0] || null;
  if (!account) {
    say("Sign in to see your profile and newest mail.");
    element("sign-in").addEventListener("click", () => msal.loginRedirect({ scopes: [config.apiScope] }));
    show("sign-in");
    return;
  }
  msal.setActiveAccount(account);
  element("who").textContent = account.username;
  show("who");
  element("sign-out").addEventListener("click", () => msal.logoutRedirect({ account }));
  show("sign-out");
  element("wrong-audience").addEventListener("click", () => checkAudience(account));
  show("tools");
  const fresh = redirected && redirected.accessToken && redirected.scopes.includes(config.apiScope);
  const token = fresh ? redirected.accessToken : await apiToken(msal, config, account);
  if (token) {
    await load(msal, config, account, token);
  }
}

main().catch((error) => {
  say("The single-page client could not start.");
  fail(error.message || String(error));
});
