// Package cdktest holds what the CDK tests share: an app that runs cdk-nag's AwsSolutions
// checks, the synthesized template as plain JSON, the nag findings and suppressions, the
// IAM statements of every role, a dependency-cycle check, and a scan for literal passwords.
package cdktest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/pgrotate/pgrotate/internal/modroot"
)

// NewApp returns an app whose synthesis runs the AwsSolutions checks, writing to a temp dir.
func NewApp(t testing.TB) awscdk.App {
	t.Helper()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return app
}

// Template synthesizes stack and returns its template as JSON values.
func Template(t testing.TB, stack awscdk.Stack) map[string]any {
	t.Helper()
	raw := assertions.Template_FromStack(stack, nil).ToJSON()
	b, err := json.Marshal(raw)
	if err != nil {
		t.Fatalf("encode template: %v", err)
	}
	var tmpl map[string]any
	if err := json.Unmarshal(b, &tmpl); err != nil {
		t.Fatalf("decode template: %v", err)
	}
	return tmpl
}

// Message renders a synthesis annotation as "<construct path>: <text>".
//
//lint:ignore SA1019 the Go assertions API returns only this type (see below)
func Message(m *cxapi.SynthesisMessage) string {
	// The Go assertions API returns only this type, whose fields are marked deprecated because
	// its definition moved to @aws-cdk/cloud-assembly-api; there is nothing newer to read.
	//lint:ignore SA1019 the assertions API offers no other type
	return fmt.Sprintf("%s: %v", *m.Id, m.Entry.Data)
}

// NagFindings returns the unsuppressed AwsSolutions errors and warnings on stack.
func NagFindings(stack awscdk.Stack) (errs, warnings []string) {
	ann := assertions.Annotations_FromStack(stack)
	match := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
	for _, m := range *ann.FindError(jsii.String("*"), match) {
		errs = append(errs, Message(m))
	}
	for _, m := range *ann.FindWarning(jsii.String("*"), match) {
		warnings = append(warnings, Message(m))
	}
	return errs, warnings
}

// Suppression is one cdk-nag suppression recorded in a resource's metadata.
type Suppression struct {
	Resource  string // logical id
	Rule      string
	Reason    string
	AppliesTo []string
}

// Suppressions lists every cdk-nag suppression in tmpl, sorted by resource and rule.
func Suppressions(tmpl map[string]any) []Suppression {
	var out []Suppression
	for id, res := range Resources(tmpl, "") {
		meta, _ := res["Metadata"].(map[string]any)
		nag, _ := meta["cdk_nag"].(map[string]any)
		rules, _ := nag["rules_to_suppress"].([]any)
		for _, r := range rules {
			rule, _ := r.(map[string]any)
			s := Suppression{Resource: id}
			s.Rule, _ = rule["id"].(string)
			s.Reason, _ = rule["reason"].(string)
			if enc, _ := rule["is_reason_encoded"].(bool); enc {
				if b, err := base64.StdEncoding.DecodeString(s.Reason); err == nil {
					s.Reason = string(b)
				}
			}
			applies, _ := rule["applies_to"].([]any)
			for _, a := range applies {
				switch a := a.(type) {
				case string:
					s.AppliesTo = append(s.AppliesTo, a)
				case map[string]any:
					s.AppliesTo = append(s.AppliesTo, fmt.Sprint(a["regex"]))
				}
			}
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Resource != out[j].Resource {
			return out[i].Resource < out[j].Resource
		}
		return out[i].Rule < out[j].Rule
	})
	return out
}

// CheckSuppressionReasons fails t for a suppression whose reason does not explain itself:
// shorter than 40 characters or a placeholder.
func CheckSuppressionReasons(t testing.TB, sups []Suppression) {
	t.Helper()
	placeholder := regexp.MustCompile(`(?i)^\s*(todo|tbd|n/?a|ok|fine|ignore|suppressed?)\b`)
	for _, s := range sups {
		if len(strings.TrimSpace(s.Reason)) < 40 || placeholder.MatchString(s.Reason) {
			t.Errorf("suppression %s on %s has no real reason: %q", s.Rule, s.Resource, s.Reason)
		}
	}
}

// Resources returns tmpl's resources of type typ ("" for all) by logical id.
func Resources(tmpl map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	all, _ := tmpl["Resources"].(map[string]any)
	for id, r := range all {
		res, _ := r.(map[string]any)
		if typ == "" || res["Type"] == typ {
			out[id] = res
		}
	}
	return out
}

// Props returns a resource's Properties.
func Props(res map[string]any) map[string]any {
	p, _ := res["Properties"].(map[string]any)
	return p
}

// Statement is one IAM policy statement with the role it is attached to.
type Statement struct {
	Role      string // logical id of the role
	Policy    string // logical id of the policy ("" for an inline policy of the role)
	Actions   []string
	Resources []any
	Condition any
}

// HasAction reports whether s allows action (exactly, or by a wildcard pattern).
func (s Statement) HasAction(action string) bool {
	for _, a := range s.Actions {
		if a == action || wildcard(a).MatchString(action) {
			return true
		}
	}
	return false
}

func wildcard(pattern string) *regexp.Regexp {
	return regexp.MustCompile("^(?i)" + strings.ReplaceAll(regexp.QuoteMeta(pattern), `\*`, ".*") + "$")
}

// Statements lists the Allow statements of every AWS::IAM::Policy and role inline policy,
// one per attached role.
func Statements(tmpl map[string]any) []Statement {
	var out []Statement
	add := func(role, policy string, doc any) {
		d, _ := doc.(map[string]any)
		sts, _ := d["Statement"].([]any)
		for _, st := range sts {
			m, _ := st.(map[string]any)
			if m["Effect"] != "Allow" {
				continue
			}
			s := Statement{Role: role, Policy: policy, Condition: m["Condition"]}
			s.Actions = strs(m["Action"])
			switch r := m["Resource"].(type) {
			case []any:
				s.Resources = r
			case nil:
			default:
				s.Resources = []any{r}
			}
			out = append(out, s)
		}
	}
	for id, res := range Resources(tmpl, "AWS::IAM::Policy") {
		p := Props(res)
		roles, _ := p["Roles"].([]any)
		for _, r := range roles {
			add(refName(r), id, p["PolicyDocument"])
		}
	}
	for id, res := range Resources(tmpl, "AWS::IAM::Role") {
		pols, _ := Props(res)["Policies"].([]any)
		for _, pol := range pols {
			m, _ := pol.(map[string]any)
			add(id, "", m["PolicyDocument"])
		}
	}
	return out
}

func strs(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// refName is the logical id a {"Ref": id} points at, or the value printed.
func refName(v any) string {
	if m, ok := v.(map[string]any); ok {
		if r, ok := m["Ref"].(string); ok {
			return r
		}
	}
	return fmt.Sprint(v)
}

// JSON renders v compactly, for comparisons and messages.
func JSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Cycle returns a dependency cycle among tmpl's resources (Ref, Fn::GetAtt, DependsOn,
// ${X} in Fn::Sub), or nil when there is none: CloudFormation rejects a cyclic template.
func Cycle(tmpl map[string]any) []string {
	resources := Resources(tmpl, "")
	deps := map[string][]string{}
	for id, res := range resources {
		set := map[string]bool{}
		collectRefs(res["Properties"], resources, set)
		for _, d := range strs(res["DependsOn"]) {
			set[d] = true
		}
		for d := range set {
			deps[id] = append(deps[id], d)
		}
		sort.Strings(deps[id])
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var cycle []string
	var visit func(string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range deps[n] {
			switch color[d] {
			case grey:
				for i, s := range stack {
					if s == d {
						cycle = append(append([]string{}, stack[i:]...), d)
					}
				}
				return true
			case white:
				if visit(d) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	ids := make([]string, 0, len(resources))
	for id := range resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if color[id] == white && visit(id) {
			return cycle
		}
	}
	return nil
}

var subRef = regexp.MustCompile(`\$\{([A-Za-z0-9]+)(\.[A-Za-z0-9.]+)?\}`)

func collectRefs(v any, resources map[string]map[string]any, set map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			for _, id := range refTargets(k, x) {
				if resources[id] != nil {
					set[id] = true
				}
			}
			collectRefs(x, resources, set)
		}
	case []any:
		for _, x := range v {
			collectRefs(x, resources, set)
		}
	}
}

// refTargets names the logical ids that the intrinsic function fn (Ref, Fn::GetAtt, Fn::Sub)
// refers to with arg; they may name parameters or pseudo parameters rather than resources.
func refTargets(fn string, arg any) []string {
	switch fn {
	case "Ref":
		if s, ok := arg.(string); ok {
			return []string{s}
		}
	case "Fn::GetAtt":
		if a, ok := arg.([]any); ok && len(a) > 0 {
			if s, ok := a[0].(string); ok {
				return []string{s}
			}
		}
	case "Fn::Sub":
		var ids []string
		for _, m := range subRef.FindAllStringSubmatch(subText(arg), -1) {
			ids = append(ids, m[1])
		}
		return ids
	}
	return nil
}

// subText is the template string of an Fn::Sub: its argument, or the first of its list.
func subText(arg any) string {
	switch s := arg.(type) {
	case string:
		return s
	case []any:
		if len(s) > 0 {
			text, _ := s[0].(string)
			return text
		}
	}
	return ""
}

// dynamicRef is a CloudFormation dynamic reference to Secrets Manager.
var dynamicRef = regexp.MustCompile(`^\{\{resolve:secretsmanager:`)

// passwordKey matches keys that name a password: password, DB_PASSWORD, MasterUserPassword…
// (not PasswordLength or password_encryption, which only describe one).
var passwordKey = regexp.MustCompile(`(?i)password$`)

// LiteralPasswords returns the JSON paths in tmpl where a password is written in clear: a
// key ending in "password" (any case, also inside JSON held in strings such as a secret
// template or an Fn::Join'ed document) with a literal value, an ECS-style {"Name": "…PASSWORD",
// "Value": literal} pair, or a MasterUserPassword that is not a dynamic reference.
func LiteralPasswords(tmpl map[string]any) []string {
	var scan passwordScan
	scan.walk("", tmpl)
	found := append(scan.found, joinedLiteralPasswords(tmpl)...)
	sort.Strings(found)
	return found
}

// passwordScan walks a template and collects the paths of literal passwords.
type passwordScan struct{ found []string }

func (s *passwordScan) walk(path string, v any) {
	switch v := v.(type) {
	case map[string]any:
		s.object(path, v)
	case []any:
		for i, x := range v {
			s.walk(fmt.Sprintf("%s[%d]", path, i), x)
		}
	case string:
		s.embeddedJSON(path, v)
	}
}

func (s *passwordScan) object(path string, v map[string]any) {
	if name, ok := v["Name"].(string); ok && passwordKey.MatchString(name) && isLiteral(v["Value"]) {
		s.found = append(s.found, path+".Value")
	}
	for k, x := range v {
		p := path + "." + k
		if literalPassword(k, x) {
			s.found = append(s.found, p)
		}
		s.walk(p, x)
	}
}

// embeddedJSON walks JSON held in a string (a secret template, a policy document…).
func (s *passwordScan) embeddedJSON(path, v string) {
	trimmed := strings.TrimSpace(v)
	if strings.HasPrefix(trimmed, "{") || strings.HasPrefix(trimmed, "[") {
		var inner any
		if json.Unmarshal([]byte(trimmed), &inner) == nil {
			s.walk(path+"<json>", inner)
		}
	}
}

// literalPassword reports whether the value x of key k is a password in clear.
func literalPassword(k string, x any) bool {
	switch {
	case k == "MasterUserPassword":
		return !isDynamicRef(x)
	case passwordKey.MatchString(k):
		return isLiteral(x)
	}
	return false
}

// isLiteral reports whether x is a non-empty string other than a dynamic reference.
func isLiteral(x any) bool {
	s, ok := x.(string)
	return ok && s != "" && !dynamicRef.MatchString(s)
}

// joinedLiteralPasswords scans the literal pieces of Fn::Join'ed JSON for
// "…password":"<literal>".
func joinedLiteralPasswords(tmpl map[string]any) []string {
	var found []string
	literal := regexp.MustCompile(`(?i)\\?"[a-z_]*password\\?"\s*:\s*\\?"([^"\\]+)`)
	walkJoin(tmpl, func(joined string) {
		for _, m := range literal.FindAllStringSubmatch(joined, -1) {
			if !strings.HasPrefix(m[1], "{{resolve:") && m[1] != "<ref>" {
				found = append(found, "Fn::Join: "+m[0])
			}
		}
	})
	return found
}

func isDynamicRef(v any) bool {
	switch v := v.(type) {
	case string:
		return dynamicRef.MatchString(v)
	case map[string]any:
		// {"Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": …}, ":SecretString:password::}}"]]}
		if j, ok := v["Fn::Join"].([]any); ok && len(j) == 2 {
			if parts, ok := j[1].([]any); ok && len(parts) > 0 {
				if s, ok := parts[0].(string); ok {
					return dynamicRef.MatchString(s)
				}
			}
		}
	}
	return false
}

// walkJoin calls fn with the literal text of every Fn::Join, tokens replaced by "<ref>".
func walkJoin(v any, fn func(string)) {
	switch v := v.(type) {
	case map[string]any:
		if j, ok := v["Fn::Join"].([]any); ok && len(j) == 2 {
			sep, _ := j[0].(string)
			if parts, ok := j[1].([]any); ok {
				var b []string
				for _, p := range parts {
					if s, ok := p.(string); ok {
						b = append(b, s)
					} else {
						b = append(b, "<ref>")
					}
				}
				fn(strings.Join(b, sep))
			}
		}
		for _, x := range v {
			walkJoin(x, fn)
		}
	case []any:
		for _, x := range v {
			walkJoin(x, fn)
		}
	}
}

// RepoRoot is the directory holding go.mod, walking up from the working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := modroot.Find()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// RolesWith returns the roles (logical ids, sorted, unique) with a statement allowing action.
func RolesWith(stmts []Statement, action string) []string {
	set := map[string]bool{}
	for _, s := range stmts {
		if s.HasAction(action) {
			set[s.Role] = true
		}
	}
	out := make([]string, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// SecretWildcards returns the statements granting secretsmanager:* (or a wildcard matching
// every secret action), or a Secrets Manager action on Resource "*" other than
// GetRandomPassword, which has no resource type.
func SecretWildcards(stmts []Statement) []Statement {
	var out []Statement
	for _, s := range stmts {
		for _, a := range s.Actions {
			la := strings.ToLower(a)
			if a == "*" || la == "secretsmanager:*" || (strings.HasPrefix(la, "secretsmanager:") && strings.Contains(la, "*")) {
				out = append(out, s)
				break
			}
			if strings.HasPrefix(la, "secretsmanager:") && la != "secretsmanager:getrandompassword" && s.onStar() {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

func (s Statement) onStar() bool {
	for _, r := range s.Resources {
		if r == "*" {
			return true
		}
	}
	return false
}

// LogicalID is the logical id of a construct's CloudFormation resource (the construct or
// its default child).
func LogicalID(stack awscdk.Stack, c interface{ Node() constructs.Node }) string {
	el, ok := c.(awscdk.CfnElement)
	if !ok {
		el, ok = c.Node().DefaultChild().(awscdk.CfnElement)
	}
	if !ok {
		panic(fmt.Sprintf("%s has no CloudFormation resource", *c.Node().Path()))
	}
	return *stack.GetLogicalId(el)
}
