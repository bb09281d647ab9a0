package user

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxEmailLength is the longest address accepted, in bytes (RFC 5321's
// path limit less the angle brackets).
const MaxEmailLength = 254

// NormalizeEmail returns the canonical form of an address, the form that is
// stored, compared and reserved, or an *InvalidInputError for field "email".
//
// Canonical means: surrounding white space trimmed, Unicode NFC (so a
// precomposed "é" and "e"+combining accent are one address), and lower-cased
// as a whole with Unicode case mapping. Lower-casing the local part departs
// from RFC 5321, which lets it be case-sensitive, but no mail provider in
// practice treats case as significant, and treating "Alice@" and "alice@"
// as two accounts is the bug users notice. Non-ASCII (RFC 6531) addresses are
// accepted; an internationalised domain is not converted between its
// Unicode and "xn--" forms, so the two spellings are distinct addresses.
// Dots and "+tags" are kept: they are the provider's business.
//
// The syntax check is deliberately loose (one "@", a non-empty local part
// of at most 64 bytes, a dotted domain, no white space, control characters
// or characters that need quoting): the only real check is the confirmation
// mail a later issue will send.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", invalid("email", "must be valid UTF-8")
	}
	s = norm.NFC.String(strings.ToLower(norm.NFC.String(s)))
	if s == "" {
		return "", invalid("email", "is required")
	}
	if len(s) > MaxEmailLength {
		return "", invalid("email", "must be at most 254 bytes long")
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.Count(s, "@") != 1 {
		return "", invalid("email", "must be an address of the form name@example.com")
	}
	local, domain := s[:at], s[at+1:]
	if len(local) > 64 {
		return "", invalid("email", "must have at most 64 bytes before the @")
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || strings.ContainsRune(`"(),:;<>[\]`, r) {
			return "", invalid("email", "must not contain spaces, control characters or any of \"(),:;<>[\\]")
		}
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return "", invalid("email", "must not start or end its name with a dot or contain two dots in a row")
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return "", invalid("email", "must have a domain with a dot, such as example.com")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return "", invalid("email", "must have a valid domain")
		}
	}
	return s, nil
}

// EmailReservationStream names the stream that holds an address: "email-"
// and the hex HMAC-SHA256 of the normalised address under key, the server's
// reservation key (at least 32 random bytes, kept out of the log; changing
// it orphans every reservation). The HMAC keeps addresses out of stream
// names, which cannot be erased, and stops anyone holding a copy of the log
// from testing guesses offline.
//
// email is normalised first (NormalizeEmail); an address that does not
// normalise is hashed as trimmed and lower-cased, so the function is total,
// but callers should reserve only addresses that passed NormalizeEmail.
func EmailReservationStream(key []byte, email string) string {
	n, err := NormalizeEmail(email)
	if err != nil {
		n = strings.ToLower(strings.TrimSpace(email))
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(n))
	return EmailReservationStreamPrefix + hex.EncodeToString(m.Sum(nil))
}

// EmailReservationStreamPrefix starts every reservation stream name.
const EmailReservationStreamPrefix = "email-"
