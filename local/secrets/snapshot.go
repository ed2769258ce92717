package localsecrets

import (
	"encoding/json"
	"slices"
)

// snapshotVersion is one version in a snapshot.
type snapshotVersion struct {
	ID     string   `json:"id"`
	Stages []string `json:"stages"`
	// Value is the SecretString itself when it is JSON (the RDS secret formats), else the
	// SecretString as a JSON string; a SecretBinary is a base64 string.
	Value json.RawMessage `json:"value"`
}

type snapshotSecret struct {
	ARN      string            `json:"arn"`
	Versions []snapshotVersion `json:"versions"`
}

// Snapshot returns the whole store as JSON:
//
//	{"<secret name>":{"arn":"…","versions":[{"id":"…","stages":["AWSCURRENT"],"value":{…}}]}}
//
// with versions oldest first, deprecated ones (no stage) included. It CONTAINS SECRET
// VALUES: it exists so `pgrotate demo --secrets-file` can show the store's end state, and
// the caller must write it to a file only it can read (mode 0600), never to a log.
//
// It is deliberately not MarshalJSON, so a Store passed to a JSON logger or encoder by
// accident does not serialise its values.
func (s *Store) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make(map[string]snapshotSecret, len(s.secrets))
	for name, sec := range s.secrets {
		ss := snapshotSecret{ARN: sec.arn, Versions: make([]snapshotVersion, 0, len(sec.versions))}
		for _, v := range sec.versions {
			val, err := snapshotValue(v)
			if err != nil {
				return nil, err
			}
			stages := slices.Clone(v.stages)
			if stages == nil {
				stages = []string{}
			}
			ss.Versions = append(ss.Versions, snapshotVersion{ID: v.id, Stages: stages, Value: val})
		}
		all[name] = ss
	}
	return json.MarshalIndent(all, "", "  ")
}

func snapshotValue(v *version) (json.RawMessage, error) {
	switch {
	case v.str != nil && json.Valid([]byte(*v.str)):
		return json.RawMessage(*v.str), nil
	case v.str != nil:
		return json.Marshal(*v.str)
	default:
		return json.Marshal(v.bin) // base64
	}
}
