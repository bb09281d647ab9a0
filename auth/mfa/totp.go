// Package mfa holds the secrets of second factors and checks codes
// against them: TOTP apps (RFC 6238 through github.com/pquerna/otp),
// backup codes, the mfa_tokens a correct first factor hands out, and the
// table that keeps TOTP secrets sealed (AES-256-GCM under a key derived
// from the master key). The second-factor events (domain/mfa) hold ids,
// digests and time steps, never a secret.
package mfa

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"image/png"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTPPeriod is the time step of every code (the authenticator apps'
// default; the otpauth URI says so too).
const TOTPPeriod = 30 * time.Second

// TOTPSkew is how many steps either side of now a code may be from: one,
// so that a code typed as it changes, or a phone clock 30 s off, still
// works.
const TOTPSkew = 1

// qrSize is the QR image's width and height in pixels.
const qrSize = 256

// Enrolment is a new TOTP secret as the user sees it, once.
type Enrolment struct {
	// Secret is the base32 secret, for typing into an app.
	Secret string
	// URI is the otpauth:// URI the QR code holds.
	URI string
	// QRPNG is the QR code as a PNG, base64 (standard encoding).
	QRPNG string
}

// NewTOTP generates a 160-bit secret for account at issuer (the app's
// label) with its URI and QR code.
func NewTOTP(issuer, account string) (Enrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: uint(TOTPPeriod / time.Second),
		SecretSize: 20, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return Enrolment{}, fmt.Errorf("mfa: totp secret: %w", err)
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return Enrolment{}, fmt.Errorf("mfa: qr code: %w", err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return Enrolment{}, fmt.Errorf("mfa: qr code: %w", err)
	}
	return Enrolment{Secret: key.Secret(), URI: key.URL(), QRPNG: base64.StdEncoding.EncodeToString(b.Bytes())}, nil
}

var totpOpts = totp.ValidateOpts{Period: uint(TOTPPeriod / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Step is the RFC 6238 counter of t.
func Step(t time.Time) int64 { return t.Unix() / int64(TOTPPeriod/time.Second) }

// MatchTOTP returns the step of code among now's step and TOTPSkew steps
// either side, compared in constant time, or 0 when none matches. The
// step, not a yes or no, is what makes a code single use: the caller
// refuses a step not after the last one spent.
func MatchTOTP(secret, code string, now time.Time) (int64, error) {
	if len(code) != totpOpts.Digits.Length() {
		return 0, nil
	}
	var found int64
	for d := int64(-TOTPSkew); d <= TOTPSkew; d++ {
		step := Step(now) + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*int64(TOTPPeriod/time.Second), 0), totpOpts)
		if err != nil {
			return 0, fmt.Errorf("mfa: totp code: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			found = step
		}
	}
	return found, nil
}

// TOTPCode is the code of secret at t (tests, the benchmark: what an app
// shows).
func TOTPCode(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totpOpts)
}
