package statuspage

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"sync"
	"time"
)

// Credentials finds the secret key of an access key ID: the API's own
// credential store (awsproto.CredentialStore).
type Credentials interface {
	SecretAccessKey(accessKeyID string) (string, bool)
}

// Limits of sign-in. A session lasts as long as a working day; a client
// address gets a few wrong guesses a minute, which makes guessing a
// 40-character secret hopeless without slowing down a person's typo.
const (
	sessionLifetime = 12 * time.Hour
	maxSessions     = 1000
	failureWindow   = time.Minute
	maxFailures     = 5
)

const (
	sessionCookie = "volgw_session"
	// signinCookie carries the token the sign-in form must repeat (a
	// double submit): another site can make the browser post the form,
	// but cannot read the cookie to fill the field.
	signinCookie = "volgw_signin"
)

type session struct {
	accessKeyID string
	csrf        string // the token every POST of this session repeats
	expires     time.Time
}

// sessions are the signed-in browsers, and the failed sign-ins by client
// address. Held in memory: a restart signs everyone out.
type sessions struct {
	creds Credentials
	now   func() time.Time

	mu       sync.Mutex
	byID     map[string]*session
	failures map[string][]time.Time // by client IP: when its sign-ins failed
}

func newSessions(creds Credentials, now func() time.Time) *sessions {
	return &sessions{creds: creds, now: now, byID: map[string]*session{}, failures: map[string][]time.Time{}}
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// current is the request's session, or nil.
func (s *sessions) current(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.byID[c.Value]
	if ss == nil {
		return nil
	}
	if s.now().After(ss.expires) {
		delete(s.byID, c.Value)
		return nil
	}
	return ss
}

// throttled says whether the client has used up its failed sign-ins.
func (s *sessions) throttled(client string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recentFailures(client)) >= maxFailures
}

// recentFailures drops the client's failures older than the window; s.mu
// held.
func (s *sessions) recentFailures(client string) []time.Time {
	cutoff := s.now().Add(-failureWindow)
	f := s.failures[client]
	i := 0
	for i < len(f) && f[i].Before(cutoff) {
		i++
	}
	if f = f[i:]; len(f) == 0 {
		delete(s.failures, client)
	} else {
		s.failures[client] = f
	}
	return f
}

// signIn checks the key pair and returns a new session's ID, or "" (and
// counts the failure against client).
func (s *sessions) signIn(client, accessKeyID, secret string) string {
	want, ok := s.creds.SecretAccessKey(accessKeyID)
	// Compare even for an unknown key ID, so the answer's timing does not
	// tell key IDs apart.
	match := subtle.ConstantTimeCompare([]byte(want), []byte(secret)) == 1 && ok && secret != ""
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if !match {
		s.failures[client] = append(s.recentFailures(client), now)
		return ""
	}
	for id, ss := range s.byID {
		if now.After(ss.expires) {
			delete(s.byID, id)
		}
	}
	if len(s.byID) >= maxSessions {
		// The oldest sign-in makes room: a flood of sign-ins with the
		// right key costs memory no more than this.
		var oldest string
		for id, ss := range s.byID {
			if oldest == "" || ss.expires.Before(s.byID[oldest].expires) {
				oldest = id
			}
		}
		delete(s.byID, oldest)
	}
	id := randomToken()
	s.byID[id] = &session{accessKeyID: accessKeyID, csrf: randomToken(), expires: now.Add(sessionLifetime)}
	return id
}

func (s *sessions) signOut(r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.mu.Lock()
		delete(s.byID, c.Value)
		s.mu.Unlock()
	}
}

// clientIP is the address failed sign-ins are counted against: the
// connection's peer (volgw is reached directly; a proxy in front would
// make every client one, which errs on the side of refusing).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func tokensEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
