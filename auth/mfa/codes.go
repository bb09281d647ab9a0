package mfa

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"strings"
)

// Backup codes are 80 random bits in base32: 16 characters shown as four
// groups of four. At 80 bits a plain SHA-256 digest is safe to keep (no
// one can search 2^80 preimages), so they need no slow password hash:
// the same reasoning as the refresh tokens' digests (ARCHITECTURE rule 4).
const backupCodeBytes = 10

var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewBackupCodes returns n codes and their digests (BackupCodeDigest), in
// the same order.
func NewBackupCodes(n int) (codes, digests []string, err error) {
	for range n {
		b := make([]byte, backupCodeBytes)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, err
		}
		raw := codeEncoding.EncodeToString(b)
		code := strings.ToLower(raw[0:4] + "-" + raw[4:8] + "-" + raw[8:12] + "-" + raw[12:16])
		codes = append(codes, code)
		digests = append(digests, BackupCodeDigest(code))
	}
	return codes, digests, nil
}

// BackupCodeDigest is the hex SHA-256 of a code as typed, normalised:
// case, spaces and dashes do not matter.
func BackupCodeDigest(code string) string {
	norm := strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, strings.ToUpper(strings.TrimSpace(code)))
	sum := sha256.Sum256([]byte(norm))
	return hex.EncodeToString(sum[:])
}
