package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

// Output sent to /dev/null, a pipe or a buffer is not a terminal, so the
// rebuild's progress bar prints plain lines there. /dev/null is a
// character device: a check on the file mode alone took it for a terminal
// and wrote escape codes into it.
func TestIsTerminalRefusesWhatIsNotATerminal(t *testing.T) {
	t.Parallel()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = null.Close() })
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = r.Close(), w.Close() })
	file, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = file.Close() })
	for name, out := range map[string]io.Writer{
		os.DevNull: null, "a pipe": w, "a regular file": file, "a strings.Builder": &strings.Builder{},
	} {
		if isTerminal(out) {
			t.Errorf("%s counts as a terminal", name)
		}
		if newProgressBar(out).tty {
			t.Errorf("the progress bar redraws in place on %s", name)
		}
	}
}
