// Talking to the server: JSON in and out, and every failure as an Error carrying a sentence to show.

/**
 * GET (no body) or POST (a body) JSON; resolves to the parsed answer. Rejects with an Error whose message
 * is the server's own sentence (errors are {error, message}) or a plain description of what went wrong;
 * an AbortError from `signal` passes unchanged, so that callers can ignore superseded requests.
 */
export async function requestJSON(url, { body, signal, headers = {} } = {}) {
  const options = { signal, headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new Error("The server could not be reached. Check the connection and try again.");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message = data && typeof data.message === "string" ? data.message : null;
    throw new Error(message || `The server answered ${response.status} ${response.statusText}.`);
  }
  if (data === null) throw new Error("The server sent an answer this page cannot read.");
  return data;
}
