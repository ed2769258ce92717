package workflow

import "reflect"

// typeName mirrors aws-lambda-go's errorType: the Go type name, dereferencing a pointer.
func typeName(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Ptr {
		t = t.Elem()
	}
	return t.Name()
}
