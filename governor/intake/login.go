package intake

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// The LOGIN mechanism is not a standard (only an expired draft,
// draft-murchison-sasl-login), but Outlook-era clients and many CRMs still
// speak only LOGIN, and go-sasl ships just its client side. The exchange:
// server asks "Username:", client answers; server asks "Password:", client
// answers. Either answer may also arrive as the AUTH command's initial
// response.

type loginServer struct {
	authenticate func(username, password string) error
	username     string
	state        int // 0: want username, 1: want password
}

func newLoginServer(authenticate func(username, password string) error) sasl.Server {
	return &loginServer{authenticate: authenticate}
}

func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.state {
	case 0:
		if response == nil {
			return []byte("Username:"), false, nil
		}
		s.username = string(response)
		s.state = 1
		return []byte("Password:"), false, nil
	case 1:
		if response == nil {
			return []byte("Password:"), false, nil
		}
		s.state = 2
		return nil, true, s.authenticate(s.username, string(response))
	}
	return nil, true, errors.New("sasl: LOGIN exchange already finished")
}
