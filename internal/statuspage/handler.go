package statuspage

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Paths, all under Prefix so that main can route them apart from the API.
const (
	Prefix      = "/status"
	signinPath  = Prefix + "/signin"
	signoutPath = Prefix + "/signout"
	jsonPath    = Prefix + "/status.json"
)

// Handler serves the status page. Create it with New.
type Handler struct {
	src      Source
	history  *History
	sessions *sessions
	log      *slog.Logger
	now      func() time.Time
	// refresh is how often the page reloads itself.
	refresh time.Duration
}

// Config is what a Handler needs.
type Config struct {
	Source      Source
	Credentials Credentials
	History     *History     // the lag samples (its Run is main's to start)
	Logger      *slog.Logger // nil: discard
	Now         func() time.Time
}

// New returns the handler of every path under Prefix.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{src: cfg.Source, history: cfg.History, sessions: newSessions(cfg.Credentials, cfg.Now),
		log: cfg.Logger, now: cfg.Now, refresh: max(cfg.History.Interval, 5*time.Second)}
}

// Owns reports whether a request's path is the status page's.
func Owns(path string) bool { return path == Prefix || strings.HasPrefix(path, Prefix+"/") }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	// Nothing here may be kept by a cache or shown in another site's
	// frame; the page loads nothing from anywhere (inline style only).
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

	switch {
	case r.URL.Path == Prefix || r.URL.Path == Prefix+"/":
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		h.page(w, r)
	case r.URL.Path == jsonPath:
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		h.json(w, r)
	case r.URL.Path == signinPath:
		if !allow(w, r, http.MethodPost) {
			return
		}
		h.signIn(w, r)
	case r.URL.Path == signoutPath:
		if !allow(w, r, http.MethodPost) {
			return
		}
		h.signOut(w, r)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// page is the status page for a signed-in browser, the sign-in form for
// any other.
func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	ss := h.sessions.current(r)
	if ss == nil {
		h.signInForm(w, r, http.StatusOK, "")
		return
	}
	v, err := h.view(r)
	if err != nil {
		http.Error(w, errUnreadable, http.StatusInternalServerError)
		return
	}
	render(w, http.StatusOK, statusTemplate, statusData{View: v, CSRF: ss.csrf, AccessKeyID: ss.accessKeyID, Refresh: int(h.refresh.Seconds())})
}

// errUnreadable is all a browser is told of a failure to read the state:
// the cause is in the log.
const errUnreadable = "The gateway's state could not be read; see volgw's log."

// view reads what the page shows, logging a failure.
func (h *Handler) view(r *http.Request) (View, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	v, err := collect(ctx, h.src, h.history, h.now())
	if err != nil {
		h.log.Error("statuspage: reading the gateway's state failed", "err", err)
	}
	return v, err
}

// json is the page's content as JSON, for scripts and monitoring; 401
// without a session.
func (h *Handler) json(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if h.sessions.current(r) == nil {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"message": "Sign in at " + Prefix + " with the gateway's access key ID and secret access key."})
		return
	}
	v, err := h.view(r)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(map[string]string{"message": errUnreadable})
		return
	}
	json.NewEncoder(w).Encode(v)
}

// signInForm shows the form with a fresh token, also set as a cookie the
// form's POST must carry (double submit).
func (h *Handler) signInForm(w http.ResponseWriter, r *http.Request, status int, problem string) {
	token := randomToken()
	http.SetCookie(w, &http.Cookie{Name: signinCookie, Value: token, Path: Prefix, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(time.Hour.Seconds())})
	render(w, status, signinTemplate, signinData{CSRF: token, Problem: problem})
}

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	c, err := r.Cookie(signinCookie)
	if err != nil || !tokensEqual(c.Value, r.PostForm.Get("csrf")) {
		// Not posted by our own form in this browser: show it afresh.
		h.signInForm(w, r, http.StatusForbidden, "The sign-in form expired. Sign in again.")
		return
	}
	client := clientIP(r)
	if h.sessions.throttled(client) {
		h.log.Warn("statuspage: sign-in refused: too many failures", "client", client)
		h.signInForm(w, r, http.StatusTooManyRequests, "Too many failed sign-ins from your address. Wait a minute and try again.")
		return
	}
	keyID := strings.TrimSpace(r.PostForm.Get("access_key_id"))
	id := h.sessions.signIn(client, keyID, r.PostForm.Get("secret_access_key"))
	if id == "" {
		// The key ID (never the secret) says which key someone tried; a
		// junk one is cut short so it cannot flood the log.
		h.log.Warn("statuspage: sign-in failed", "client", client, "access_key_id", keyID[:min(len(keyID), 128)])
		h.signInForm(w, r, http.StatusUnauthorized, "The access key ID or secret access key is wrong.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: signinCookie, Path: Prefix, MaxAge: -1})
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: Prefix, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(sessionLifetime.Seconds())})
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	ss := h.sessions.current(r)
	if ss == nil || !tokensEqual(ss.csrf, r.PostForm.Get("csrf")) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	h.sessions.signOut(r)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: Prefix, MaxAge: -1})
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}
