package host_test

import (
	"errors"

	"github.com/sluice-net/sluice/host"
)

func asStep(err error, target **host.StepError) bool { return errors.As(err, target) }
