package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/eventstore"
)

// HeaderConsistencyToken carries a log position (eventstore.Position.String)
// from a command response back to a query, which waits until the read
// models include it (ARCHITECTURE.md rule 6; readapi.Consistency).
const HeaderConsistencyToken = "X-Consistency-Token"

// SetConsistencyToken puts the position a command wrote in its response.
// A zero position (the command appended nothing) sets no header.
func SetConsistencyToken(c *gin.Context, p eventstore.Position) {
	if !p.IsZero() {
		c.Header(HeaderConsistencyToken, p.String())
	}
}
