// Package statuspage is volgw's read-only status page for a browser: the
// gateways, their cache and upload backlog, each volume with its recovery
// point and a chart of how far behind it was over the last hour, and the
// snapshots. It is served on the API's endpoint under /status (main puts
// it in front of the API's handler) and shows nothing to anyone who has
// not signed in with the gateway's API key pair.
//
// The pieces:
//
//   - Handler (handler.go): the routes, sign-in and sign-out, the page and
//     its JSON twin.
//   - sessions (auth.go): who is signed in. The secret key is checked
//     against the API's own credential store in constant time and never
//     kept; the browser gets a random session ID (HttpOnly, SameSite=Strict,
//     Path=/status) that expires; failed sign-ins are limited per client
//     address; every POST carries a token bound to the session (or, for
//     the sign-in form, to a cookie of its own), so no other site can
//     post for the user.
//   - History (history.go): the recovery-point lag of every volume, sampled
//     every few seconds into a fixed ring of an hour per volume. It lives in
//     memory and starts empty at every start of volgw.
//   - collect (view.go) reads the control plane in-process, the same
//     sources the API answers from; render (page.go) draws the page with
//     html/template and the chart as inline SVG: no script, style sheet or
//     font from anywhere else, so the page works on a machine with no
//     network.
//
// It must not change anything: it calls only the control plane's read
// methods.
package statuspage
