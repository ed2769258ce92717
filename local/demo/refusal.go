package demo

import (
	"errors"

	"github.com/pgrotate/pgrotate/adapters/postgres"
	"github.com/pgrotate/pgrotate/local/backend"
	"github.com/pgrotate/pgrotate/workflow"
)

// IsRefusal reports whether err is the setup refusing to take over something it did not
// create — a superuser, the admin, a reserved or pg_ name, a clone name, an existing role
// pgrotate did not create (without AdoptExistingUser), someone else's demo table — or an
// invalid role name. A refusal comes before any change to the server: `pgrotate demo`
// exits 2 on it.
func IsRefusal(err error) bool {
	var (
		refused   *postgres.RefusedRole
		unmanaged *postgres.UnmanagedRole
		invalid   *workflow.InvalidRoleName
		taken     *backend.DemoTableTaken
	)
	return errors.As(err, &refused) || errors.As(err, &unmanaged) || errors.As(err, &invalid) || errors.As(err, &taken)
}
