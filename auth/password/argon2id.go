// Package password hashes and verifies passwords with argon2id and checks
// new passwords against the registration policy.
//
// Hashes are PHC strings ("$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>",
// unpadded standard base64), so the parameters travel with each hash and can
// be raised later: NeedsRehash tells a login handler to store a fresh hash.
// The hashing itself is golang.org/x/crypto/argon2; nothing here is
// hand-rolled cryptography.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Config holds the argon2id parameters for new hashes. The zero value is not
// usable; start from DefaultConfig.
type Config struct {
	// MemoryKiB is argon2's m parameter in KiB (OWASP: 19456 = 19 MiB).
	MemoryKiB uint32
	// Iterations is argon2's t parameter (OWASP: 2).
	Iterations uint32
	// Parallelism is argon2's p parameter (OWASP: 1).
	Parallelism uint8
	// SaltLength in bytes (16).
	SaltLength uint32
	// KeyLength is the length of the derived hash in bytes (32).
	KeyLength uint32
	// MaxConcurrent bounds how many hashes run at once, so that a burst of
	// logins cannot allocate MemoryKiB per request without limit; waiting
	// callers honour their context. 0 means runtime.GOMAXPROCS(0): hashing is
	// CPU-bound, so more at once only adds memory, not throughput.
	MaxConcurrent int
}

// DefaultConfig returns the OWASP Password Storage Cheat Sheet parameters
// for argon2id: m=19 MiB, t=2, p=1.
func DefaultConfig() Config {
	return Config{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
}

// Limits on parameters accepted from configuration and from stored hashes. A
// stored hash with absurd parameters (a corrupted or forged row) must not let
// one login allocate gigabytes or spin for minutes.
const (
	maxMemoryKiB  = 1 << 20 // 1 GiB
	maxIterations = 64
	maxKeyLength  = 128
	maxSaltLength = 64
)

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Parallelism < 1 {
		errs = append(errs, errors.New("password: parallelism must be at least 1"))
	}
	if c.MemoryKiB < 8*uint32(max(c.Parallelism, 1)) || c.MemoryKiB > maxMemoryKiB {
		errs = append(errs, fmt.Errorf("password: memory must be between 8*parallelism KiB and %d KiB, got %d", maxMemoryKiB, c.MemoryKiB))
	}
	if c.Iterations < 1 || c.Iterations > maxIterations {
		errs = append(errs, fmt.Errorf("password: iterations must be between 1 and %d, got %d", maxIterations, c.Iterations))
	}
	if c.SaltLength < 16 || c.SaltLength > maxSaltLength {
		errs = append(errs, fmt.Errorf("password: salt length must be between 16 and %d bytes, got %d", maxSaltLength, c.SaltLength))
	}
	if c.KeyLength < 16 || c.KeyLength > maxKeyLength {
		errs = append(errs, fmt.Errorf("password: key length must be between 16 and %d bytes, got %d", maxKeyLength, c.KeyLength))
	}
	if c.MaxConcurrent < 0 {
		errs = append(errs, errors.New("password: max concurrent must not be negative"))
	}
	return errors.Join(errs...)
}

// ErrMalformedHash is returned for a stored hash that is not an argon2id PHC
// string this package can verify. It means a corrupted or foreign row, never
// a wrong password.
var ErrMalformedHash = errors.New("password: malformed argon2id hash")

// MaxPasswordBytes is the longest password hashed. Longer input is rejected
// before hashing (argon2 would digest it, but unbounded input invites abuse);
// the policy reports it as too long.
const MaxPasswordBytes = 1024

// ErrTooLong is returned by Hash for a password over MaxPasswordBytes.
var ErrTooLong = errors.New("password: longer than the maximum length")

// Hasher hashes and verifies passwords. It is safe for concurrent use.
type Hasher struct {
	cfg   Config
	slots chan struct{}
	// dummy is a hash of a random password with the current parameters,
	// verified against for unknown accounts so they cost one hash too.
	dummy phc
}

// NewHasher validates cfg and returns a Hasher.
func NewHasher(cfg Config) (*Hasher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := cfg.MaxConcurrent
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{cfg: cfg, slots: make(chan struct{}, n)}
	var pw [32]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, fmt.Errorf("password: dummy password: %w", err)
	}
	d, err := h.newPHC(pw[:])
	if err != nil {
		return nil, err
	}
	h.dummy = d
	return h, nil
}

// Config returns the parameters new hashes use.
func (h *Hasher) Config() Config { return h.cfg }

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.slots }

// Hash returns a PHC string for password under the configured parameters
// and a fresh random salt. It fails only when ctx ends while waiting for a
// slot, the password is over MaxPasswordBytes, or the system RNG fails.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if len(password) > MaxPasswordBytes {
		return "", ErrTooLong
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	p, err := h.newPHC(normalize(password))
	if err != nil {
		return "", err
	}
	return p.String(), nil
}

func (h *Hasher) newPHC(password []byte) (phc, error) {
	salt := make([]byte, h.cfg.SaltLength)
	if _, err := rand.Read(salt); err != nil {
		return phc{}, fmt.Errorf("password: salt: %w", err)
	}
	p := phc{memory: h.cfg.MemoryKiB, iterations: h.cfg.Iterations, parallelism: h.cfg.Parallelism, salt: salt}
	p.key = argon2.IDKey(password, salt, p.iterations, p.memory, p.parallelism, h.cfg.KeyLength)
	return p, nil
}

// Verify reports whether password matches encoded, comparing in constant
// time. The parameters come from encoded, not from the Hasher's config, so
// old hashes keep verifying after the config changes. A malformed encoded
// returns ErrMalformedHash (and false); ctx ending while waiting for a slot
// returns ctx.Err().
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (bool, error) {
	p, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	tooLong := len(password) > MaxPasswordBytes
	if tooLong {
		// Hash a prefix anyway, so the answer takes as long as any other;
		// Hash never stored a password this long, so it cannot match.
		password = password[:MaxPasswordBytes]
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey(normalize(password), p.salt, p.iterations, p.memory, p.parallelism, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(got, p.key) == 1 && !tooLong, nil
}

// DummyVerify spends one hash with the current parameters and always
// reports no match. Call it when a login names an unknown account, so that
// the response takes as long as a wrong password and does not reveal which
// emails are registered.
func (h *Hasher) DummyVerify(ctx context.Context, password string) error {
	if len(password) > MaxPasswordBytes {
		password = password[:MaxPasswordBytes]
	}
	if err := h.acquire(ctx); err != nil {
		return err
	}
	defer h.release()
	got := argon2.IDKey(normalize(password), h.dummy.salt, h.dummy.iterations, h.dummy.memory, h.dummy.parallelism, uint32(len(h.dummy.key)))
	_ = subtle.ConstantTimeCompare(got, h.dummy.key)
	return nil
}

// NeedsRehash reports whether encoded was made with parameters other than
// the current config (or cannot be parsed), so a successful login should
// store a new hash of the password it just verified.
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, err := parsePHC(encoded)
	if err != nil {
		return true
	}
	return p.memory != h.cfg.MemoryKiB || p.iterations != h.cfg.Iterations ||
		p.parallelism != h.cfg.Parallelism || uint32(len(p.salt)) != h.cfg.SaltLength ||
		uint32(len(p.key)) != h.cfg.KeyLength
}

// normalize puts a password in Unicode NFC before hashing (NIST SP 800-63B
// 5.1.1.2), so "é" typed as one code point on one system and as "e" plus a
// combining accent on another is the same password. Hashes made by this
// package have always been of the NFC form.
func normalize(password string) []byte { return []byte(norm.NFC.String(password)) }

// phc is a decoded "$argon2id$v=19$m=..,t=..,p=..$salt$hash" string.
type phc struct {
	memory      uint32
	iterations  uint32
	parallelism uint8
	salt, key   []byte
}

var b64 = base64.RawStdEncoding.Strict()

func (p phc) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.iterations, p.parallelism,
		b64.EncodeToString(p.salt), b64.EncodeToString(p.key))
}

// parsePHC decodes an argon2id PHC string strictly: the fields in this
// order, version 19, parameters within the package limits.
func parsePHC(s string) (phc, error) {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, ErrMalformedHash
	}
	var p phc
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return phc{}, ErrMalformedHash
	}
	m, err1 := parseParam(params[0], "m=", maxMemoryKiB)
	t, err2 := parseParam(params[1], "t=", maxIterations)
	par, err3 := parseParam(params[2], "p=", 255)
	if err := errors.Join(err1, err2, err3); err != nil || m < 8*par || t < 1 || par < 1 {
		return phc{}, ErrMalformedHash
	}
	p.memory, p.iterations, p.parallelism = m, t, uint8(par)
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > maxSaltLength {
		return phc{}, ErrMalformedHash
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > maxKeyLength {
		return phc{}, ErrMalformedHash
	}
	p.salt, p.key = salt, key
	return p, nil
}

func parseParam(s, prefix string, limit uint32) (uint32, error) {
	v, ok := strings.CutPrefix(s, prefix)
	if !ok || v == "" || (len(v) > 1 && v[0] == '0') {
		return 0, ErrMalformedHash
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n > uint64(limit) {
		return 0, ErrMalformedHash
	}
	return uint32(n), nil
}
