package keys

import (
	"context"
	"slices"
	"sync"
)

// MemoryStore is an in-process Store: the reference for the port's
// semantics, and enough for tests. Keys in it die with the process.
type MemoryStore struct {
	mu   sync.Mutex
	keys []SealedKey
}

// SaveSealed implements Store.
func (s *MemoryStore) SaveSealed(_ context.Context, k SealedKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.keys {
		if e.ID == k.ID {
			return ErrKeyExists
		}
	}
	k.Nonce, k.Ciphertext = slices.Clone(k.Nonce), slices.Clone(k.Ciphertext)
	s.keys = append(s.keys, k)
	return nil
}

// LoadSealed implements Store.
func (s *MemoryStore) LoadSealed(context.Context) ([]SealedKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys), nil
}
