// Package authledger holds what belongs to the repository as a whole: the
// OpenAPI specification (openapi.yaml, the canonical copy), embedded so that
// the binary serves exactly the file in the repository at /openapi.yaml.
package authledger

import _ "embed"

// OpenAPI is the content of openapi.yaml. Every route the server registers
// must be described there (cmd/authledger's tests check it).
//
//go:embed openapi.yaml
var OpenAPI []byte
