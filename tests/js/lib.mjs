// Shared plumbing for the SDK drivers: configuration from the environment, and one JSON
// object on stdout. The SDKs log through console.log/info, so those go to stderr.
const stderr = (...args) => console.error(...args);
console.log = stderr;
console.info = stderr;
console.debug = stderr;

export function env(name) {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`environment variable ${name} is required`);
  }
  return value;
}

export function optionalEnv(name) {
  const value = process.env[name];
  return value === undefined || value === "" ? undefined : value;
}

/** The status and body of an axios response, or of the error it threw. */
export async function axiosCall(promise) {
  try {
    const response = await promise;
    return { ok: true, status: response.status, data: response.data };
  } catch (error) {
    if (error?.response) {
      return { ok: false, status: error.response.status, data: error.response.data };
    }
    throw error;
  }
}

/** What an openapi-fetch call (as @engagespot/core makes them) resolved to. */
export async function fetchCall(promise) {
  const { data, error, response } = await promise;
  return { ok: response.ok, status: response.status, data: data ?? null, error: error ?? null };
}

/**
 * Run `main(expect)`, print its result as one JSON line and exit: 0 when every
 * `expect(step, condition)` held, 1 when one did not, 2 when something threw.
 */
export function run(main) {
  const failures = [];
  const expect = (step, condition) => {
    if (!condition) failures.push(step);
  };
  const finish = (result, code) => {
    process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(code));
  };
  main(expect).then(
    (result) => finish({ ...result, failures }, failures.length ? 1 : 0),
    (error) => {
      // axios errors carry the response that made the SDK throw.
      const thrown = {
        error: String(error?.stack ?? error),
        request: error?.config ? `${error.config.method} ${error.config.url}` : undefined,
        status: error?.response?.status,
        body: error?.response?.data,
      };
      finish({ thrown, failures }, 2);
    },
  );
}
