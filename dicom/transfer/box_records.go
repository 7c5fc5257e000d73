package transfer

import (
	"encoding/json"
	"fmt"

	"lifeline/internal/durable"
)

// The box's forwarder keeps its per-instance records in the box's own durable store
// (the hub's state lives behind hubstate instead); these read and write a record
// inside one of the store's transactions.

func getJSONTx(tx *durable.Tx, bucket, key string, v any) (bool, error) {
	b := tx.Bucket([]byte(bucket))
	if b == nil {
		return false, nil
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("transfer: stored %s/%s: %w", bucket, key, err)
	}
	return true, nil
}

func putJSONTx(tx *durable.Tx, bucket, key string, v any) error {
	b, err := durable.Bucket(tx, bucket)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }
