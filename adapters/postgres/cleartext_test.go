package postgres

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgrotate/pgrotate/internal/testctx"
	"github.com/pgrotate/pgrotate/workflow"
)

// A server that asks for the password in clear text never receives it: the connection is
// refused on the client side. The fake server speaks just enough of the protocol.
func TestCleartextPasswordIsNeverSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		be := pgproto3.NewBackend(c, c)
		if _, err := be.ReceiveStartupMessage(); err != nil {
			got <- "startup: " + err.Error()
			return
		}
		be.Send(&pgproto3.AuthenticationCleartextPassword{})
		if err := be.Flush(); err != nil {
			got <- "flush: " + err.Error()
			return
		}
		be.SetAuthType(pgproto3.AuthTypeCleartextPassword)
		msg, err := be.Receive()
		if err != nil {
			got <- "nothing"
			return
		}
		if pw, ok := msg.(*pgproto3.PasswordMessage); ok {
			got <- "password:" + pw.Password
			return
		}
		got <- "other"
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	const secret = "never-in-clear-text-0123456789"
	_, _, err = Login(testctx.Context(t), target(workflow.Endpoint{Host: "127.0.0.1", Port: port}, "app", "app_user", workflow.NewPassword(secret), "disable"), Options{})
	if err == nil {
		t.Fatal("login succeeded against a server asking for a clear-text password")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatal("the error carries the password")
	}
	if r := <-got; strings.HasPrefix(r, "password:") {
		t.Fatal("the password was sent in clear text")
	} else if r != "nothing" {
		t.Fatalf("fake server: %s", r)
	}
}
