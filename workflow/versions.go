package workflow

// Versions maps each version id of a secret to its staging labels, as DescribeSecret's
// VersionIdsToStages does.
type Versions map[string][]string

// Has reports whether version id carries stage.
func (v Versions) Has(id, stage string) bool {
	for _, s := range v[id] {
		if s == stage {
			return true
		}
	}
	return false
}

// With returns the version that carries stage, or "".
func (v Versions) With(stage string) string {
	for id := range v {
		if v.Has(id, stage) {
			return id
		}
	}
	return ""
}
