package ratelimit_test

import (
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/ratelimit"
)

// An API key is its own credential: its requests do not spend its
// owner's bucket, nor another key's.
func TestByCredentialTellsKeysFromTheirOwner(t *testing.T) {
	owner, key := uuid.New(), uuid.New()
	keyOf := func(p *httpapi.Principal) (string, bool) {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		if p != nil {
			httpapi.SetPrincipal(c, *p)
		}
		return ratelimit.ByCredential(c)
	}
	if k, ok := keyOf(&httpapi.Principal{UserID: owner}); !ok || k != "user:"+owner.String() {
		t.Errorf("the owner's token: %q %v", k, ok)
	}
	if k, ok := keyOf(&httpapi.Principal{UserID: owner, APIKeyID: key}); !ok || k != "key:"+key.String() {
		t.Errorf("the owner's key: %q %v", k, ok)
	}
	if k, ok := keyOf(nil); ok {
		t.Errorf("no caller: %q, want no credential", k)
	}
}
