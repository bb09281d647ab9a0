package identity_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/identity"
)

// Mount refuses incomplete Deps, naming every missing one, and registers
// nothing.
func TestMountValidates(t *testing.T) {
	t.Parallel()
	engine, err := httpapi.New(httpapi.Config{Logger: slog.New(slog.DiscardHandler), OpenAPI: []byte("openapi: 3.1.0")})
	if err != nil {
		t.Fatal(err)
	}
	err = identity.Mount(&engine.RouterGroup, identity.Deps{})
	if err == nil {
		t.Fatal("empty Deps were accepted")
	}
	for _, want := range []string{"register, login, refresh and revoke", "Auth", "Ring", "PublicURL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if n := len(engine.Routes()); n != 4 {
		t.Errorf("%d routes after a refused Mount, want the engine's own 4", n)
	}
}
