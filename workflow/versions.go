package workflow

// Versions maps each version id of a secret to its staging labels, as DescribeSecret's
// VersionIdsToStages does. Versions without a label (deprecated) are absent.
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

// Current returns the id of the AWSCURRENT version, or "".
func (v Versions) Current() string { return v.With(StageCurrent) }

// Pending returns the id of the AWSPENDING version, or "".
func (v Versions) Pending() string { return v.With(StagePending) }

// Previous returns the id of the AWSPREVIOUS version, or "".
func (v Versions) Previous() string { return v.With(StagePrevious) }

// TokenStage is where a rotation's version (its token) stands.
type TokenStage int

const (
	// TokenGone: the version is neither AWSCURRENT nor AWSPENDING: a newer rotation took
	// AWSPENDING, or it was never written.
	TokenGone TokenStage = iota
	// TokenPending: AWSPENDING and not AWSCURRENT: its rotation is in progress.
	TokenPending
	// TokenCurrent: AWSCURRENT, whether or not AWSPENDING is still on it.
	TokenCurrent
)

// Stage classifies version token. AWSCURRENT is checked first: AWSPENDING stays on a
// version that became AWSCURRENT until the next rotation moves it.
func (v Versions) Stage(token string) TokenStage {
	switch {
	case v.Has(token, StageCurrent):
		return TokenCurrent
	case v.Has(token, StagePending):
		return TokenPending
	}
	return TokenGone
}

// NotPending returns a *RotationSuperseded saying why the rotation of version token may not
// go on, or nil while token is AWSPENDING and not AWSCURRENT.
func (v Versions) NotPending(token string) error {
	switch v.Stage(token) {
	case TokenCurrent:
		return &RotationSuperseded{Version: token, Reason: "the version is already AWSCURRENT"}
	case TokenGone:
		return &RotationSuperseded{Version: token, Reason: "the version is no longer AWSPENDING"}
	}
	return nil
}
