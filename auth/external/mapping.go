package external

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mapping is the one place that knows the external auth API's JSON: the
// member names of the requests we send and of the answers we read. Each
// is a path of member names joined by dots ("data.user.id" reads
// {"data":{"user":{"id":...}}}); member names containing a dot cannot be
// addressed. A different API is a different Mapping (and, where its paths
// differ, different LoginPath, RefreshPath and MePath); nothing else in
// the package names a JSON member.
type Mapping struct {
	// LoginEmail and LoginPassword are the login request's members.
	LoginEmail    string
	LoginPassword string
	// RefreshRequest is the refresh request's member holding the
	// refresh token.
	RefreshRequest string

	// AccessToken, IDToken, RefreshToken, TokenType and ExpiresIn are read
	// from the login and the refresh answers. AccessToken and ExpiresIn
	// (seconds, a number or a numeric string) are required; the others may
	// be absent (a refresh answer without a refresh token keeps the old
	// one). A TokenType, when present, must be Bearer.
	AccessToken  string
	IDToken      string
	RefreshToken string
	TokenType    string
	ExpiresIn    string

	// LoginUser is the object of the login answer holding the user ("" is
	// the answer itself). When it has no UserID, Login asks MePath with
	// the new access token instead.
	LoginUser string
	// MeUser is the object of the me answer holding the user ("" is the
	// answer itself).
	MeUser string
	// UserID, UserEmail and UserName are read inside LoginUser and MeUser.
	// UserID is required; the others may be absent.
	UserID    string
	UserEmail string
	UserName  string

	// SubjectClaim is the claim of the provider's JWTs whose value is the
	// UserID (sub in plain OpenID; Azure AD's stable id across
	// applications is oid).
	SubjectClaim string
}

// DefaultMapping is the default shape of the API (docs/external-auth.md):
//
//	POST login   {"email","password"}  → {"access_token","id_token","refresh_token","token_type","expires_in","user":{"id","email","name"}}
//	POST refresh {"refresh_token"}     → the same token members
//	GET  me      Bearer access token   → {"id","email","name"}
var DefaultMapping = Mapping{
	LoginEmail:     "email",
	LoginPassword:  "password",
	RefreshRequest: "refresh_token",
	AccessToken:    "access_token",
	IDToken:        "id_token",
	RefreshToken:   "refresh_token",
	TokenType:      "token_type",
	ExpiresIn:      "expires_in",
	LoginUser:      "user",
	MeUser:         "",
	UserID:         "id",
	UserEmail:      "email",
	UserName:       "name",
	SubjectClaim:   "sub",
}

func (m Mapping) validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"LoginEmail", m.LoginEmail}, {"LoginPassword", m.LoginPassword}, {"RefreshRequest", m.RefreshRequest},
		{"AccessToken", m.AccessToken}, {"ExpiresIn", m.ExpiresIn}, {"UserID", m.UserID}, {"SubjectClaim", m.SubjectClaim},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		}
	}
	for _, p := range []string{m.LoginEmail, m.LoginPassword, m.RefreshRequest, m.AccessToken, m.IDToken, m.RefreshToken,
		m.TokenType, m.ExpiresIn, m.LoginUser, m.MeUser, m.UserID, m.UserEmail, m.UserName} {
		if p != "" && slices.Contains(strings.Split(p, "."), "") {
			errs = append(errs, fmt.Errorf("path %q has an empty member name", p))
		}
	}
	return errors.Join(errs...)
}

// loginBody is the login request.
func (m Mapping) loginBody(email, password string) ([]byte, error) {
	return encodePaths(map[string]string{m.LoginEmail: email, m.LoginPassword: password})
}

// refreshBody is the refresh request.
func (m Mapping) refreshBody(refreshToken string) ([]byte, error) {
	return encodePaths(map[string]string{m.RefreshRequest: refreshToken})
}

// tokens reads the token members of a login or refresh answer. received
// is when the answer came, from which ExpiresIn counts.
func (m Mapping) tokens(doc document, received time.Time) (Tokens, error) {
	var t Tokens
	var err error
	if t.AccessToken, err = doc.str(m.AccessToken, true); err != nil {
		return Tokens{}, err
	}
	if t.IDToken, err = doc.str(m.IDToken, false); err != nil {
		return Tokens{}, err
	}
	if t.RefreshToken, err = doc.str(m.RefreshToken, false); err != nil {
		return Tokens{}, err
	}
	typ, err := doc.str(m.TokenType, false)
	if err != nil {
		return Tokens{}, err
	}
	if typ != "" && !strings.EqualFold(typ, "Bearer") {
		return Tokens{}, fmt.Errorf("%s is %q, not Bearer", m.TokenType, typ)
	}
	secs, err := doc.seconds(m.ExpiresIn)
	if err != nil {
		return Tokens{}, err
	}
	t.ExpiresIn = time.Duration(secs) * time.Second
	t.ExpiresAt = received.Add(t.ExpiresIn)
	return t, nil
}

// user reads the user object at path; ok is false when it has no id.
func (m Mapping) user(doc document, path string) (u User, ok bool, err error) {
	obj := doc
	if path != "" {
		v, found := doc.lookup(path)
		if !found || v == nil {
			return User{}, false, nil
		}
		o, isObj := v.(map[string]any)
		if !isObj {
			return User{}, false, fmt.Errorf("%s is not an object", path)
		}
		obj = document{o}
	}
	if u.ID, err = obj.str(m.UserID, false); err != nil || u.ID == "" {
		return User{}, false, err
	}
	if u.Email, err = obj.str(m.UserEmail, false); err != nil {
		return User{}, false, err
	}
	if u.Name, err = obj.str(m.UserName, false); err != nil {
		return User{}, false, err
	}
	return u, true, nil
}

// encodePaths builds the JSON object holding each value at its path.
func encodePaths(values map[string]string) ([]byte, error) {
	root := map[string]any{}
	for path, v := range values {
		parts := strings.Split(path, ".")
		obj := root
		for _, p := range parts[:len(parts)-1] {
			next, ok := obj[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				obj[p] = next
			}
			obj = next
		}
		obj[parts[len(parts)-1]] = v
	}
	return json.Marshal(root)
}

// document is a decoded JSON object answer.
type document struct{ m map[string]any }

// parseDocument decodes an answer that must be a JSON object. Numbers stay
// json.Number, so that a numeric user id keeps all its digits.
func parseDocument(body []byte) (document, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return document{}, errors.New("the body is not a JSON object")
	}
	return document{m}, nil
}

func (d document) lookup(path string) (any, bool) {
	var cur any = d.m
	for p := range strings.SplitSeq(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// str reads a string (or a number, as its digits) at path; "" when path
// is empty or the member absent or null, an error when required.
func (d document) str(path string, required bool) (string, error) {
	if path == "" {
		return "", nil
	}
	v, ok := d.lookup(path)
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case json.Number:
		s = v.String()
	case nil:
	default:
		return "", fmt.Errorf("%s is not a string", path)
	}
	if s == "" && required {
		if !ok {
			return "", fmt.Errorf("%s is missing", path)
		}
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// seconds reads a positive whole number of seconds (a JSON number or a
// numeric string, as some token endpoints send) at path.
func (d document) seconds(path string) (int64, error) {
	s, err := d.str(path, true)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f > math.MaxInt32 || math.IsNaN(f) {
		return 0, fmt.Errorf("%s is not a positive number of seconds", path)
	}
	return int64(f), nil
}
