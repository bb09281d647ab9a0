package user

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// MaxEmailLength is the longest address accepted, in bytes (RFC 5321's
// path limit less the angle brackets).
const MaxEmailLength = 254

// NormalizeEmail returns the canonical form of an address, the form that is
// stored, compared and reserved, or an *InvalidInputError for field "email".
// Two addresses a person cannot tell apart must have one canonical form, or
// they are two accounts (docs/adr: email normal form):
//
//   - Surrounding white space is trimmed, and the address is put in Unicode
//     NFKC, lower-cased as a whole (Unicode case mapping), and NFKC again:
//     compatibility forms fold into their plain letters, so fullwidth
//     "ａｌｉｃｅ", mathematical bold "𝐚𝐥𝐢𝐜𝐞" and a decomposed "é" are
//     "alice" and "é". Lower-casing the local part departs from RFC 5321,
//     which lets it be case-sensitive, but no mail provider in practice
//     treats case as significant.
//   - A domain with non-ASCII characters is converted to its ASCII form
//     with IDNA (UTS #46, golang.org/x/net/idna's Lookup profile): "bücher"
//     is "xn--bcher-kva", as a mail server resolves it. The ASCII form is the
//     canonical one, so an address already in ASCII keeps exactly the form
//     it had before (and its reservation stream), and a look-alike domain
//     shows as the xn-- label it is. An ASCII domain is not passed through
//     IDNA: its rules would refuse addresses that were accepted before
//     (an "_" in a label).
//   - A local part that mixes scripts is refused ("аlice" with a Cyrillic
//     "а"): Latin, Cyrillic, Greek and the rest each on their own, besides
//     the combinations Japanese, Chinese and Korean writing use with Latin
//     (UTS #39's Highly Restrictive level). Digits and punctuation belong to
//     every script. A local part wholly in one script other than Latin is
//     accepted ("иван", "δοκιμή"), and so are Latin letters beyond ASCII
//     ("élodie"), unless every character of the local part looks like an
//     ASCII one (its UTS #39 skeleton is ASCII: all-Cyrillic "аӏісе",
//     Greek "ρορ", Latin alpha "ɑlice"): it would read as someone else's
//     ASCII address. The cost is that the rare genuine word made only of
//     such letters ("хор", Russian for choir) is refused too.
//
// Dots and "+tags" are kept: they are the provider's business.
//
// The syntax check is deliberately loose (one "@", a non-empty local part
// of at most 64 bytes, a dotted domain, no white space, control characters
// or characters that need quoting): the only real check is the confirmation
// mail a later issue will send.
func NormalizeEmail(s string) (string, error) {
	s, local, domain, err := splitEmail(s, norm.NFKC)
	if err != nil {
		return "", err
	}
	if err := checkScripts(local); err != nil {
		return "", err
	}
	if !isASCII(domain) {
		a, err := idna.Lookup.ToASCII(domain)
		if err != nil {
			return "", invalid("email", "must have a valid domain")
		}
		domain = a
		s = local + "@" + domain
		if len(s) > MaxEmailLength {
			return "", invalid("email", "must be at most 254 bytes long")
		}
	}
	if err := checkDomain(domain); err != nil {
		return "", err
	}
	return s, nil
}

// NormalizeEmailV1 is the canonical form NormalizeEmail gave before NFKC,
// IDNA and the script rules: NFC, lower-cased, the domain as typed. It is
// kept because the reservations made then are keyed by it: the accounts
// registered under it are found through EmailReservationStreams. On an
// ASCII address the two agree, result and error alike.
func NormalizeEmailV1(s string) (string, error) {
	s, _, domain, err := splitEmail(s, norm.NFC)
	if err != nil {
		return "", err
	}
	if err := checkDomain(domain); err != nil {
		return "", err
	}
	return s, nil
}

// splitEmail applies the normalisation form around lower-casing and checks
// what both normal forms check: length, one "@", the local part, the
// characters.
func splitEmail(s string, form norm.Form) (email, local, domain string, err error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", "", "", invalid("email", "must be valid UTF-8")
	}
	s = form.String(strings.ToLower(form.String(s)))
	if s == "" {
		return "", "", "", invalid("email", "is required")
	}
	if len(s) > MaxEmailLength {
		return "", "", "", invalid("email", "must be at most 254 bytes long")
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.Count(s, "@") != 1 {
		return "", "", "", invalid("email", "must be an address of the form name@example.com")
	}
	local, domain = s[:at], s[at+1:]
	if len(local) > 64 {
		return "", "", "", invalid("email", "must have at most 64 bytes before the @")
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || strings.ContainsRune(`"(),:;<>[\]`, r) {
			return "", "", "", invalid("email", "must not contain spaces, control characters or any of \"(),:;<>[\\]")
		}
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return "", "", "", invalid("email", "must not start or end its name with a dot or contain two dots in a row")
	}
	return s, local, domain, nil
}

func checkDomain(domain string) error {
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return invalid("email", "must have a domain with a dot, such as example.com")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return invalid("email", "must have a valid domain")
		}
	}
	return nil
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// scriptSets are the combinations of scripts a local part may use beyond a
// single one (UTS #39, Highly Restrictive).
var scriptSets = [][]*unicode.RangeTable{
	{unicode.Latin, unicode.Han, unicode.Hiragana, unicode.Katakana},
	{unicode.Latin, unicode.Han, unicode.Bopomofo},
	{unicode.Latin, unicode.Han, unicode.Hangul},
}

// checkScripts refuses a local part that mixes scripts, or that is wholly
// in one non-Latin script and made only of look-alikes of Latin letters
// and digits (see NormalizeEmail).
func checkScripts(local string) error {
	var scripts []*unicode.RangeTable
	for _, r := range local {
		sc := scriptOf(r)
		switch {
		case sc == unicode.Common || sc == unicode.Inherited:
			continue
		case sc == nil:
			return invalid("email", "must not contain unassigned characters")
		}
		if !containsTable(scripts, sc) {
			scripts = append(scripts, sc)
		}
	}
	if len(scripts) > 1 && !allowedMix(scripts) {
		return invalid("email", "must not mix scripts (such as Latin and Cyrillic letters) before the @")
	}
	if !isASCII(local) && isASCII(confusables.Skeleton(local)) {
		return invalid("email", "must not be made only of characters that look like ASCII ones before the @")
	}
	return nil
}

func allowedMix(scripts []*unicode.RangeTable) bool {
	for _, set := range scriptSets {
		ok := true
		for _, sc := range scripts {
			ok = ok && containsTable(set, sc)
		}
		if ok {
			return true
		}
	}
	return false
}

func containsTable(ts []*unicode.RangeTable, t *unicode.RangeTable) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// scriptOf is the Unicode Script property of r (nil: unassigned). ASCII,
// most addresses, is answered without a table walk.
func scriptOf(r rune) *unicode.RangeTable {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return unicode.Latin
		}
		return unicode.Common
	}
	for _, t := range []*unicode.RangeTable{unicode.Latin, unicode.Common, unicode.Inherited, unicode.Cyrillic, unicode.Greek} {
		if unicode.Is(t, r) {
			return t
		}
	}
	for _, t := range unicode.Scripts {
		if unicode.Is(t, r) {
			return t
		}
	}
	return nil
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
	return reservationStream(key, n)
}

func reservationStream(key []byte, normalised string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(normalised))
	return EmailReservationStreamPrefix + hex.EncodeToString(m.Sum(nil))
}

// EmailReservationStreams names every stream that may hold the address a
// user typed, whether reserved now or before NormalizeEmail folded
// compatibility forms and converted domains, in the order to look:
//
//  1. the stream of its NormalizeEmailV1 form: where the address was
//     looked up before, so that every account registered then keeps
//     exactly the login it had, even when two accounts now collide;
//  2. the stream of its NormalizeEmail form (EmailReservationStream),
//     where registrations reserve now, when it differs;
//  3. when the domain has xn-- labels, the stream of the V1 form of the
//     same address with its domain in Unicode, the spelling accounts
//     registered before under the Unicode domain hold.
//
// Login takes the first stream that is held. Registration reserves 2 and
// refuses an address that 1 or 3 holds for a registered user, so that an
// address and its look-alike are never two new accounts. The list is empty
// when the address is valid under neither normal form; for an ASCII
// address without xn-- labels it is the one stream of EmailReservationStream.
func EmailReservationStreams(key []byte, email string) []string {
	var out []string
	add := func(normalised string, err error) {
		if err != nil {
			return
		}
		s := reservationStream(key, normalised)
		for _, o := range out {
			if o == s {
				return
			}
		}
		out = append(out, s)
	}
	add(NormalizeEmailV1(email))
	current, err := NormalizeEmail(email)
	add(current, err)
	if err == nil {
		at := strings.LastIndexByte(current, '@')
		if domain := current[at+1:]; strings.Contains(domain, "xn--") {
			if u, err := idna.Lookup.ToUnicode(domain); err == nil {
				add(NormalizeEmailV1(current[:at] + "@" + u))
			}
		}
	}
	return out
}

// EmailReservationStreamPrefix starts every reservation stream name.
const EmailReservationStreamPrefix = "email-"
