package user_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/authledger/authledger/domain/user"
)

func TestNormalizeEmailFoldsLookAlikes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"ａｌｉｃｅ@example.com", "alice@example.com"},             // fullwidth
		{"𝐚𝐥𝐢𝐜𝐞@example.com", "alice@example.com"},             // mathematical bold
		{"𝒜lice@𝐞xample.com", "alice@example.com"},             // script capital, bold domain
		{"ALICE＠ＥＸＡＭＰＬＥ．ＣＯＭ", "alice@example.com"},             // fullwidth @ and dot
		{"x@bücher.example", "x@xn--bcher-kva.example"},        // IDNA
		{"x@BÜCHER.example", "x@xn--bcher-kva.example"},        // IDNA after case mapping
		{"x@bu\u0308cher.example", "x@xn--bcher-kva.example"},  // decomposed ü
		{"x@xn--bcher-kva.example", "x@xn--bcher-kva.example"}, // already ASCII: as before
		{"x@XN--BCHER-KVA.EXAMPLE", "x@xn--bcher-kva.example"}, // letter case only
		{"x@bücher。example", "x@xn--bcher-kva.example"},        // ideographic full stop (UTS #46)
		{"иван@пример.рф", "иван@xn--e1afmkfd.xn--p1ai"},       // all Cyrillic, not a look-alike
		{"δοκιμή@παράδειγμα.δοκιμή", "δοκιμή@xn--hxajbheg2az3al.xn--jxalpdlp"},
		{"e\u0301lodie@exemple.fr", "élodie@exemple.fr"},
		{"田中@例え.jp", "田中@xn--r8jz45g.jp"},
		{"たなか太郎@example.jp", "たなか太郎@example.jp"},     // Hiragana with Han
		{"kimチョル@example.com", "kimチョル@example.com"}, // Latin with Katakana
		{"김철수@example.kr", "김철수@example.kr"},
		{"user_1+tag@exa_mple.example", "user_1+tag@exa_mple.example"}, // ASCII domains skip IDNA's stricter rules
	} {
		got, err := user.NormalizeEmail(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		if again, err := user.NormalizeEmail(got); err != nil || again != got {
			t.Errorf("NormalizeEmail is not idempotent on %q: %q, %v", got, again, err)
		}
	}
}

func TestNormalizeEmailRefusesMixedScriptsAndLookAlikes(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"\u0430lice@example.com",                     // Cyrillic а, then Latin
		"alic\u0435@example.com",                     // Latin, then Cyrillic е
		"\u03b1lice@example.com",                     // Greek alpha
		"иванalice@example.com",                      // Cyrillic and Latin words
		"\u0430\u04cf\u0456\u0441\u0435@example.com", // all Cyrillic, every letter a Latin look-alike
		"\u0251lice@example.com",                     // Latin alpha: Latin, but looks like ASCII "alice"
		"ρορ@example.com",                            // all Greek look-alikes
		"한국中文ひらがな@example.com",                       // Hangul with Hiragana is no script set
		"x@bü_cher.example",                          // IDNA refuses "_" in a label it converts
		"x@-bücher.example",
		"x@\u0661\u0662a.example",    // Arabic digits mixed into a Latin label is IDNA's bidi refusal
		"\U000e0061lice@example.com", // a tag character
		"\u0378x@example.com",        // unassigned
	} {
		got, err := user.NormalizeEmail(in)
		var ie *user.InvalidInputError
		if !errors.As(err, &ie) || ie.Field != "email" {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want an email error", in, got, err)
		}
	}
}

// The reservation stream of an address is the HMAC of its normal form, so
// an address whose normal form changed would lose its account: every ASCII
// address must normalise exactly as it did before NFKC and IDNA, result
// and refusal alike, and NormalizeEmailV1 (the legacy lookup) must be the
// old normaliser on every input. oldNormalizeEmail below is that code as
// it was, frozen.
func TestASCIIAddressesMapExactlyAsBefore(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	rng := rand.New(rand.NewPCG(25, 6))
	// Letters weigh most, so that many generated addresses are valid.
	letters := []string{"a", "b", "Z", "0", "9", "example", "com", "xn--", "-", "."}
	ascii := append(slices.Repeat(letters, 8), "_", "+", "@", " ", "\t", "\"", "(", ",", ":", ";", "<", "[", "\\", "!", "#", "$", "%",
		"&", "'", "*", "/", "=", "?", "^", "`", "{", "|", "}", "~", "\x00", "\x7f")
	unicodeToo := append(slices.Clone(ascii), "é", "É", "\u0301", "ü", "ａ", "＠", "．", "𝐚", "а", "Ω", "ß", "\u200b", "İ", "ﬀ", "바", "\xff", "\u3002", "ǅ")
	gen := func(parts []string) string {
		piece := func(n int) string {
			var b strings.Builder
			for range n {
				b.WriteString(parts[rng.IntN(len(parts))])
			}
			return b.String()
		}
		if rng.IntN(4) == 0 {
			return piece(rng.IntN(12))
		}
		// Mostly of the right shape: local@label.label[.label]
		s := piece(1+rng.IntN(6)) + "@" + piece(1+rng.IntN(3)) + "." + piece(1+rng.IntN(2))
		if rng.IntN(3) == 0 {
			s += "." + piece(1)
		}
		return s
	}
	accepted := 0
	for range 20000 {
		in := gen(ascii)
		want, oldErr := oldNormalizeEmail(in)
		got, err := user.NormalizeEmail(in)
		if (err == nil) != (oldErr == nil) || got != want {
			t.Fatalf("NormalizeEmail(%q) = %q, %v; before: %q, %v", in, got, err, want, oldErr)
		}
		if err != nil {
			continue
		}
		accepted++
		m := hmac.New(sha256.New, key)
		m.Write([]byte(strings.ToLower(strings.TrimSpace(in))))
		stream := "email-" + hex.EncodeToString(m.Sum(nil))
		if got := user.EmailReservationStream(key, in); got != stream {
			t.Fatalf("EmailReservationStream(%q) = %s, want %s", in, got, stream)
		}
		if !strings.Contains(want, "xn--") {
			if got := user.EmailReservationStreams(key, in); !slices.Equal(got, []string{stream}) {
				t.Fatalf("EmailReservationStreams(%q) = %v, want only %s", in, got, stream)
			}
		}
	}
	t.Logf("%d of 20000 generated ASCII addresses valid", accepted)
	if accepted < 1000 {
		t.Fatalf("only %d of the generated addresses were valid: the generator tests too little", accepted)
	}
	for range 20000 {
		in := gen(unicodeToo)
		want, oldErr := oldNormalizeEmail(in)
		got, err := user.NormalizeEmailV1(in)
		if (err == nil) != (oldErr == nil) || got != want {
			t.Fatalf("NormalizeEmailV1(%q) = %q, %v; before: %q, %v", in, got, err, want, oldErr)
		}
	}
}

func TestEmailReservationStreams(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	h := func(normalised string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(normalised))
		return "email-" + hex.EncodeToString(m.Sum(nil))
	}
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"Alice@Example.com", []string{h("alice@example.com")}},
		// The spelling an account registered before holds comes first, then
		// the current form, then the other spelling of the domain.
		{"x@Bücher.example", []string{h("x@bücher.example"), h("x@xn--bcher-kva.example")}},
		{"x@xn--bcher-kva.example", []string{h("x@xn--bcher-kva.example"), h("x@bücher.example")}},
		{"ａlice@example.com", []string{h("ａlice@example.com"), h("alice@example.com")}},
		// Refused now, so only an account registered before can hold it.
		{"\u0430lice@example.com", []string{h("\u0430lice@example.com")}},
		{"not an address", nil},
	} {
		if got := user.EmailReservationStreams(key, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("EmailReservationStreams(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if got := user.EmailReservationStreams(key, "x@bücher.example"); got[1] != user.EmailReservationStream(key, "x@bücher.example") {
		t.Errorf("the current stream is not EmailReservationStream's")
	}
}

type oldInvalidError struct{ msg string }

func (e *oldInvalidError) Error() string { return e.msg }

func oldInvalid(msg string) error { return &oldInvalidError{msg} }

// oldNormalizeEmail is NormalizeEmail as it was before NFKC, IDNA and the
// script rules (commit e1a2922), kept verbatim as the reference.
func oldNormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", oldInvalid("must be valid UTF-8")
	}
	s = norm.NFC.String(strings.ToLower(norm.NFC.String(s)))
	if s == "" {
		return "", oldInvalid("is required")
	}
	if len(s) > user.MaxEmailLength {
		return "", oldInvalid("must be at most 254 bytes long")
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.Count(s, "@") != 1 {
		return "", oldInvalid("must be an address of the form name@example.com")
	}
	local, domain := s[:at], s[at+1:]
	if len(local) > 64 {
		return "", oldInvalid("must have at most 64 bytes before the @")
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || strings.ContainsRune(`"(),:;<>[\]`, r) {
			return "", oldInvalid("must not contain spaces, control characters or any of \"(),:;<>[\\]")
		}
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return "", oldInvalid("must not start or end its name with a dot or contain two dots in a row")
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return "", oldInvalid("must have a domain with a dot, such as example.com")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return "", oldInvalid("must have a valid domain")
		}
	}
	return s, nil
}
