package store

// Helpers a second backend needs to store exactly what this one stores,
// so that a database copied from bbolt (kadenz db copy) keeps matching:
// the keyed hashes of erasure are computed the same way everywhere.

// AddressHash is the keyed hash (HMAC-SHA256 with the pseudonym secret)
// of a lower-cased address: the key of an erasure tombstone, and after
// 0x00 the key of an erased recipient's suppression entry.
func AddressHash(secret []byte, addr string) []byte { return hashAddress(secret, addr) }

// ErasedEventKey is the key a seen event ID is kept under once the
// recipient it was about is erased (0x00 + a keyed hash of the ID).
func ErasedEventKey(secret []byte, id string) []byte { return erasedEventKey(secret, id) }

// WithoutAddress replaces every spelling of addr in text (a suppression's
// reason) by a placeholder.
func WithoutAddress(text, addr string) string { return withoutAddress(text, addr) }

// RecipientTagLen is how many bytes of a recipient's AddressHash a seen
// event ID carries, so that erasure can find the IDs of their events.
const RecipientTagLen = recipientTagLen
