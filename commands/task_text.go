package commands

import "strings"

// logText makes text from outside (an OCR engine's output, a processor's
// error) fit the log: valid UTF-8 without NUL characters, which
// PostgreSQL's jsonb refuses ("unsupported Unicode escape sequence"), so
// that a result a tool printed can never make its task impossible to
// complete.
func logText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}
