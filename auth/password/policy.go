package password

import (
	_ "embed"
	"errors"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

//go:generate go run ./internal/gencommon common_passwords.txt

// commonPasswords is the list the policy refuses: about fifty thousand
// lower-case entries authored (not downloaded) by internal/gencommon from
// well-known top passwords, keyboard walks and digit runs with the usual
// suffixes and years. See that command for exactly how it was built.
//
//go:embed common_passwords.txt
var commonPasswords string

var (
	commonOnce sync.Once
	commonSet  map[string]struct{}
)

// IsCommon reports whether password, compared case-insensitively, is on the
// embedded list of common passwords.
func IsCommon(password string) bool {
	commonOnce.Do(func() {
		lines := strings.Split(commonPasswords, "\n")
		commonSet = make(map[string]struct{}, len(lines))
		for _, l := range lines {
			if l != "" {
				commonSet[l] = struct{}{}
			}
		}
	})
	_, ok := commonSet[strings.ToLower(password)]
	return ok
}

// Rule names a policy rule; it is stable and may be shown to clients.
type Rule string

const (
	RuleTooShort    Rule = "too_short"
	RuleTooLong     Rule = "too_long"
	RuleIsEmail     Rule = "is_email"
	RuleIsLocalPart Rule = "is_email_local_part"
	RuleCommon      Rule = "common"
	RuleRepetitive  Rule = "repetitive"
)

// PolicyError says which rule a password broke. Field is always "password";
// Message is safe to show to the client as the field-level message of a
// 400 invalid-input answer. errors.Is(err, ErrPolicy) matches it.
type PolicyError struct {
	Field   string
	Rule    Rule
	Message string
}

func (e *PolicyError) Error() string { return "password: " + e.Message }

// Is makes errors.Is(err, ErrPolicy) true.
func (e *PolicyError) Is(target error) bool { return target == ErrPolicy }

// ErrPolicy is matched by every *PolicyError.
var ErrPolicy = errors.New("password: rejected by policy")

// Policy is the rule set for new passwords (registration and change).
type Policy struct {
	// MinLength in Unicode characters (code points), 10 by default.
	MinLength int
	// MaxLength in bytes, MaxPasswordBytes at most.
	MaxLength int
}

// DefaultPolicy: at least 10 characters, at most MaxPasswordBytes bytes.
func DefaultPolicy() Policy { return Policy{MinLength: 10, MaxLength: MaxPasswordBytes} }

// Validate reports every problem with p at once.
func (p Policy) Validate() error {
	var errs []error
	if p.MinLength < 8 {
		errs = append(errs, errors.New("password: policy minimum length must be at least 8"))
	}
	if p.MaxLength < p.MinLength || p.MaxLength > MaxPasswordBytes {
		errs = append(errs, errors.New("password: policy maximum length must lie between the minimum and MaxPasswordBytes"))
	}
	return errors.Join(errs...)
}

// Check returns nil if password is acceptable for an account with the given
// email address, or a *PolicyError naming the first rule it breaks. The
// comparisons with the email are case-insensitive and ignore surrounding
// spaces; the local part ("alice" of "alice@example.com") is refused too,
// since it is the first thing a guesser tries. Length counts code points
// of the NFC form (the form that is hashed), so a passphrase in any script
// is measured fairly.
func (p Policy) Check(password, email string) error {
	password = norm.NFC.String(password)
	if n := utf8.RuneCountInString(password); n < p.MinLength {
		return &PolicyError{Field: "password", Rule: RuleTooShort, Message: "must be at least " + strconv.Itoa(p.MinLength) + " characters long"}
	}
	if len(password) > p.MaxLength {
		return &PolicyError{Field: "password", Rule: RuleTooLong, Message: "must be at most " + strconv.Itoa(p.MaxLength) + " bytes long"}
	}
	lp := strings.ToLower(strings.TrimSpace(password))
	e := strings.ToLower(strings.TrimSpace(email))
	if e != "" && lp == e {
		return &PolicyError{Field: "password", Rule: RuleIsEmail, Message: "must not be your email address"}
	}
	if at := strings.LastIndexByte(e, '@'); at > 0 && lp == e[:at] {
		return &PolicyError{Field: "password", Rule: RuleIsLocalPart, Message: "must not be the name part of your email address"}
	}
	if IsCommon(password) || IsCommon(strings.TrimSpace(password)) {
		return &PolicyError{Field: "password", Rule: RuleCommon, Message: "is too common; choose a password that is not on lists of frequently used passwords"}
	}
	if repetitive(lp) {
		return &PolicyError{Field: "password", Rule: RuleRepetitive, Message: "must not be a repeated character, a repeated short pattern or a simple sequence"}
	}
	return nil
}

// repetitive reports a password made of one short unit repeated ("abcabcabca",
// "xxxxxxxxxx") or a run of consecutive code points ("abcdefghij",
// "9876543210"), the patterns NIST SP 800-63B names beside breach lists.
func repetitive(s string) bool {
	r := []rune(s)
	if len(r) < 2 {
		return false
	}
	for unit := 1; unit <= 3 && unit < len(r); unit++ {
		rep := true
		for i := unit; i < len(r); i++ {
			if r[i] != r[i-unit] {
				rep = false
				break
			}
		}
		if rep {
			return true
		}
	}
	for _, step := range []rune{1, -1} {
		seq := true
		for i := 1; i < len(r); i++ {
			if r[i]-r[i-1] != step {
				seq = false
				break
			}
		}
		if seq {
			return true
		}
	}
	return false
}
