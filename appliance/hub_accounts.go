package appliance

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"lifeline/internal/hubstate"
	"lifeline/internal/signin"
)

// `lifeline hub user …`: the viewer's accounts, managed like the boxes (admin.go),
// on the store when no hub runs and through the admin socket when one does. Passwords
// are hashed by the command that read them, so only the hash crosses the socket.

// bySocket names, for the audit, who asked through the admin socket when the kernel
// does not say more (admin_peer.go): whoever may open it (its mode is 0600, so the
// hub's own user or root).
const bySocket = "admin socket"

// addAccountRoutes serves the account commands on the admin socket.
func (h *Hub) addAccountRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /user/add", func(w http.ResponseWriter, r *http.Request) {
		var u signin.NewUser
		if err := json.Unmarshal([]byte(r.FormValue("user")), &u); err != nil {
			writeAdminError(w, errors.New("user: "+err.Error()))
			return
		}
		answerAdmin(w, h.gate.AddUser(r.Context(), u, askedBy(r)), map[string]string{"added": u.ID})
	})
	mux.HandleFunc("POST /user/passwd", func(w http.ResponseWriter, r *http.Request) {
		id := r.FormValue("user")
		answerAdmin(w, h.gate.SetPassword(r.Context(), id, r.FormValue("hash"), askedBy(r)), map[string]string{"changed": id})
	})
	mux.HandleFunc("POST /user/disabled", func(w http.ResponseWriter, r *http.Request) {
		id := r.FormValue("user")
		disabled, err := strconv.ParseBool(r.FormValue("disabled"))
		if err == nil {
			err = h.gate.SetDisabled(r.Context(), id, disabled, askedBy(r))
		}
		answerAdmin(w, err, map[string]string{"changed": id})
	})
	mux.HandleFunc("GET /user/list", func(w http.ResponseWriter, r *http.Request) {
		users, err := h.gate.Users(r.Context())
		answerAdmin(w, err, users)
	})
	mux.HandleFunc("POST /user/link", func(w http.ResponseWriter, r *http.Request) {
		link, err := h.gate.IssueLink(r.Context(), r.FormValue("user"), askedBy(r))
		answerAdmin(w, err, link)
	})
}

func answerAdmin(w http.ResponseWriter, err error, out any) {
	if err != nil {
		writeAdminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func writeAdminError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	if errors.Is(err, signin.ErrNotAudited) {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// AddUser adds an account to the viewer. The password must already be hashed with
// signin.HashPassword.
func (a HubAdmin) AddUser(u signin.NewUser) error {
	raw, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return a.do("user/add", url.Values{"user": {string(raw)}}, nil, func(l hubLocal) error {
		return l.gate.AddUser(context.Background(), u, byLocal())
	})
}

// SetPassword replaces a user's password with the hashed one and signs the user out
// everywhere.
func (a HubAdmin) SetPassword(id, hash string) error {
	return a.do("user/passwd", url.Values{"user": {id}, "hash": {hash}}, nil, func(l hubLocal) error {
		return l.gate.SetPassword(context.Background(), id, hash, byLocal())
	})
}

// SetDisabled disables (signing the user out everywhere) or enables a user.
func (a HubAdmin) SetDisabled(id string, disabled bool) error {
	form := url.Values{"user": {id}, "disabled": {strconv.FormatBool(disabled)}}
	return a.do("user/disabled", form, nil, func(l hubLocal) error {
		return l.gate.SetDisabled(context.Background(), id, disabled, byLocal())
	})
}

// Users lists the viewer's accounts.
func (a HubAdmin) Users() ([]signin.Account, error) {
	var out []signin.Account
	err := a.do("user/list", nil, &out, func(l hubLocal) error {
		var err error
		out, err = l.gate.Users(context.Background())
		return err
	})
	return out, err
}

// SignInLink issues a one-time sign-in link's token for a user; the caller puts it
// after '#' in the viewer's URL (signin.LinkPagePath), which `lifeline hub user link`
// prints.
func (a HubAdmin) SignInLink(id string) (signin.LinkToken, error) {
	var out signin.LinkToken
	err := a.do("user/link", url.Values{"user": {id}}, &out, func(l hubLocal) error {
		var err error
		out, err = l.gate.IssueLink(context.Background(), id, byLocal())
		return err
	})
	return out, err
}

// SignInLinkURL is the URL a one-time link's token opens on the viewer at base
// (e.g. https://ed.hospital.example:8444).
func SignInLinkURL(base string, link signin.LinkToken) string {
	return base + signin.LinkPagePath + "#" + link.Token
}

// DemoDoctor is the account `lifeline demo` signs in with.
const DemoDoctor = "demo.doctor"

// DemoSignInLink makes sure the demo doctor's account exists, with a random password
// nobody is shown (the demo signs in by link only), and returns a one-time sign-in
// link for it on this hub's viewer. Call it once the hub serves, so that the link
// names the port the viewer is bound to.
func (h *Hub) DemoSignInLink(ctx context.Context) (string, error) {
	if _, err := h.state.User(ctx, DemoDoctor); errors.Is(err, hubstate.ErrNotFound) {
		hash, err := signin.HashPassword(randomPassword(), signin.PasswordParams{})
		if err != nil {
			return "", err
		}
		u := signin.NewUser{ID: DemoDoctor, Name: "演示医生 Demo doctor", Role: signin.RoleDoctor, Language: signin.LanguageChinese, PasswordHash: hash}
		if err := h.gate.AddUser(ctx, u, "lifeline demo"); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	link, err := h.gate.IssueLink(ctx, DemoDoctor, "lifeline demo")
	if err != nil {
		return "", err
	}
	return SignInLinkURL(h.ViewerURL(), link), nil
}

// randomPassword is 160 random bits in base32, for an account that signs in by link.
func randomPassword() string {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic("no randomness: " + err.Error())
	}
	return base32.StdEncoding.EncodeToString(b)
}
