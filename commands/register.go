package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/mailtoken"
	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// Register asks for a new account.
type Register struct {
	// UserID is chosen before the first append; uuid.Nil means a fresh
	// random id. A retry of the same command reuses it.
	UserID      uuid.UUID
	Email       string
	Password    string
	DisplayName string
	// TermsVersion is the version of the terms the user accepts; it must
	// be RegisterHandler.TermsVersion when that is set.
	TermsVersion string
	Meta         Meta
}

// RegisterResult is the account id and the log position of the last append.
// In enumeration-safe mode, a registration of a taken address is no error:
// Existing is true and UserID is the id that was asked for but not
// created (the HTTP answer shows neither).
type RegisterResult struct {
	UserID   uuid.UUID
	Position eventstore.Position
	Existing bool
}

// RegisterHandler holds an address with the reservation stream (NoStream),
// then writes the user stream (NoStream). An address a registered user
// holds under another spelling reserved before the current normal form
// (user.EmailReservationStreams) is taken too. When the reservation is already
// held by an id whose user stream is missing (a registration that crashed
// between its two appends), it completes that registration under the held
// id instead of refusing the address: nobody owns it yet.
type RegisterHandler struct {
	Reservations   *Repository[*user.EmailReservation]
	Users          *Repository[*user.User]
	Hasher         *password.Hasher
	Policy         password.Policy
	ReservationKey []byte
	Now            func() time.Time
	// Minter, when set, has the registration ask for the address's
	// verification in the same append (the reactor mails the link).
	Minter *mailtoken.Minter
	// EnumerationSafe (AUTHLEDGER_REQUIRE_VERIFIED_EMAIL) answers a taken
	// address like a new one and records RegistrationAttempted on its
	// owner's stream instead, which has the owner mailed.
	EnumerationSafe bool
	// TermsVersion (AUTHLEDGER_TERMS_VERSION), when set, is the version
	// a registration must accept; it is recorded in the same append
	// (user.terms_accepted.v1).
	TermsVersion string
}

// Handle validates every field at once (errors.Join of
// *user.InvalidInputError and *password.PolicyError), then registers. An
// address held by a registered user is user.ErrEmailTaken.
func (h *RegisterHandler) Handle(ctx context.Context, cmd Register) (RegisterResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	email, emailErr := user.NormalizeEmail(cmd.Email)
	_, nameErr := user.NormalizeDisplayName(cmd.DisplayName)
	var pwErr error
	if emailErr == nil {
		pwErr = h.Policy.Check(cmd.Password, email)
	} else {
		pwErr = h.Policy.Check(cmd.Password, "")
	}
	var termsErr error
	if h.TermsVersion != "" && cmd.TermsVersion != h.TermsVersion {
		termsErr = &user.InvalidInputError{Field: "terms_version", Message: "must be the current terms version, " + h.TermsVersion}
	}
	if err := errors.Join(emailErr, nameErr, pwErr, termsErr); err != nil {
		return RegisterResult{}, err
	}
	id := cmd.UserID
	if id == uuid.Nil {
		var err error
		if id, err = uuid.NewV7(); err != nil {
			return RegisterResult{}, fmt.Errorf("commands: user id: %w", err)
		}
	}
	// Hash before any append: a slow hash must not sit between the two.
	hash, err := h.Hasher.Hash(ctx, cmd.Password)
	if err != nil {
		return RegisterResult{}, fmt.Errorf("commands: hash password: %w", err)
	}
	resStream := user.EmailReservationStream(h.ReservationKey, email)
	taken, err := heldUnderAnotherSpelling(ctx, h.Reservations, h.Users, h.ReservationKey, cmd.Email, resStream)
	if err != nil {
		return RegisterResult{}, err
	}
	if taken {
		return h.taken(ctx, cmd, id, now)
	}
	var pos eventstore.Position
	_, err = h.Reservations.Update(ctx, resStream, cmd.Meta, func(r *user.EmailReservation) error {
		if holder, held := r.Holder(); held && holder != id {
			u, err := h.Users.Load(ctx, user.StreamName(holder))
			if err != nil {
				return err
			}
			if u.Registered() {
				return user.ErrEmailTaken
			}
			id = holder // complete the crashed registration
		}
		return r.Reserve(id, now)
	})
	if errors.Is(err, user.ErrEmailTaken) {
		return h.taken(ctx, cmd, id, now)
	}
	if err != nil {
		return RegisterResult{}, err
	}
	u, err := user.Register(id, email, cmd.DisplayName, hash, now)
	if err != nil {
		return RegisterResult{}, err
	}
	if h.TermsVersion != "" {
		if err := u.AcceptTerms(h.TermsVersion, now); err != nil {
			return RegisterResult{}, err
		}
	}
	if h.Minter != nil {
		tid, digest, err := newMailToken(h.Minter, mailtoken.EmailVerification, id)
		if err != nil {
			return RegisterResult{}, err
		}
		if err := u.RequestEmailVerification(tid, digest, email, now); err != nil {
			return RegisterResult{}, err
		}
	}
	res, err := h.Users.Append(ctx, user.StreamName(id), 0, cmd.Meta, u.Changes())
	if errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		// A concurrent completion of the same crashed registration won.
		return h.taken(ctx, cmd, id, now)
	}
	if err != nil {
		return RegisterResult{}, err
	}
	pos = res.Position
	return RegisterResult{UserID: id, Position: pos}, nil
}

// taken answers a registration of a registered user's address:
// user.ErrEmailTaken, or in enumeration-safe mode a result like a new
// account's, after recording the attempt on the owner's stream.
func (h *RegisterHandler) taken(ctx context.Context, cmd Register, id uuid.UUID, now time.Time) (RegisterResult, error) {
	if !h.EnumerationSafe {
		return RegisterResult{}, user.ErrEmailTaken
	}
	owner, ok, err := registeredHolder(ctx, h.Reservations, h.Users, h.ReservationKey, cmd.Email)
	if err != nil {
		return RegisterResult{}, err
	}
	if !ok {
		// Held under an older spelling only: the owner is that holder,
		// which heldUnderAnotherSpelling found registered.
		return RegisterResult{UserID: id, Existing: true}, nil
	}
	res, err := h.Users.Update(ctx, user.StreamName(owner.ID()), cmd.Meta, func(u *user.User) error {
		return u.RecordRegistrationAttempt(now)
	})
	if err != nil {
		return RegisterResult{}, err
	}
	return RegisterResult{UserID: id, Position: res.Position, Existing: true}, nil
}

// AnonymousMeta is the metadata of a request made before authentication.
func AnonymousMeta(requestID, clientIP, userAgent string) Meta {
	return RequestMeta(requestID, clientIP, userAgent, events.Actor{Kind: events.ActorAnonymous})
}

// RequestMeta is the metadata of a request made by actor: the request id
// is the correlation id of every event it appends.
func RequestMeta(requestID, clientIP, userAgent string, actor events.Actor) Meta {
	return Meta{CorrelationID: requestID, Actor: actor, ClientIP: clientIP, UserAgent: userAgent}
}
