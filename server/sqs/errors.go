package sqs

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/spoolrun/spool/store"
)

// code is one entry of SQS's error catalog: the error shape's name (the
// JSON __type, which SDKs map to a typed error), its code under the query
// protocol (the x-amzn-query-error header, which SDKs of the query era and
// batch entries use), the HTTP status, and whether the caller is at fault.
type code struct {
	shape  string
	query  string
	status int
	sender bool
}

// The errors the facade answers, as SQS names them. The first group are
// shapes of SQS's model (aws-sdk-go-v2's types.*); the rest are SQS's
// common errors, which SDKs report by code.
var (
	errQueueDoesNotExist   = code{"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", 400, true}
	errQueueNameExists     = code{"QueueNameExists", "QueueAlreadyExists", 400, true}
	errQueueDeletedRecent  = code{"QueueDeletedRecently", "AWS.SimpleQueueService.QueueDeletedRecently", 400, true}
	errReceiptHandle       = code{"ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", 404, true}
	errMessageNotInflight  = code{"MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", 400, true}
	errTooManyEntries      = code{"TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400, true}
	errEntryIDsNotDistinct = code{"BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400, true}
	errEmptyBatch          = code{"EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", 400, true}
	errInvalidBatchEntryID = code{"InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId", 400, true}
	errBatchTooLong        = code{"BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", 400, true}
	errInvalidAttrName     = code{"InvalidAttributeName", "InvalidAttributeName", 400, true}
	errInvalidAttrValue    = code{"InvalidAttributeValue", "InvalidAttributeValue", 400, true}
	errInvalidContents     = code{"InvalidMessageContents", "InvalidMessageContents", 400, true}
	errOverLimit           = code{"OverLimit", "OverLimit", 403, true}
	errUnsupported         = code{"UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", 400, true}

	errInvalidParameter   = code{"InvalidParameterValue", "InvalidParameterValue", 400, true}
	errMissingParameter   = code{"MissingParameter", "MissingParameter", 400, true}
	errAccessDenied       = code{"AccessDenied", "AccessDenied", 403, true}
	errInvalidClientID    = code{"InvalidClientTokenId", "InvalidClientTokenId", 403, true}
	errSignature          = code{"SignatureDoesNotMatch", "SignatureDoesNotMatch", 403, true}
	errIncompleteSig      = code{"IncompleteSignature", "IncompleteSignature", 400, true}
	errMissingAuth        = code{"MissingAuthenticationToken", "MissingAuthenticationToken", 403, true}
	errRequestExpired     = code{"RequestExpired", "RequestExpired", 400, true}
	errUnknownOperation   = code{"UnknownOperationException", "InvalidAction", 400, true}
	errSerialization      = code{"SerializationException", "MalformedQueryString", 400, true}
	errTooLarge           = code{"RequestEntityTooLarge", "RequestEntityTooLarge", 413, true}
	errMethodNotAllowed   = code{"InvalidHttpRequest", "InvalidHttpRequest", 405, true}
	errInternal           = code{"InternalError", "InternalError", 500, false}
	errServiceUnavailable = code{"ServiceUnavailable", "ServiceUnavailable", 503, false}
)

// Error is an error in SQS's shape: the facade answers it with its status,
// a JSON body {"__type": "com.amazonaws.sqs#<Shape>", "message": ...} and
// the header x-amzn-query-error: <query code>;Sender (or ;Receiver), as SQS
// does. err, when set, is the Spool error behind it.
type Error struct {
	c   code
	msg string
	err error
}

func (e *Error) Error() string { return e.c.shape + ": " + e.msg }

// Unwrap returns the Spool error behind it, if any.
func (e *Error) Unwrap() error { return e.err }

// Shape is the error's shape name, such as "QueueDoesNotExist".
func (e *Error) Shape() string { return e.c.shape }

// Code is the error's code under the query protocol, as batch entries
// carry it, such as "AWS.SimpleQueueService.NonExistentQueue".
func (e *Error) Code() string { return e.c.query }

// newError returns an error of catalog entry c.
func newError(c code, format string, args ...any) *Error {
	return &Error{c: c, msg: fmt.Sprintf(format, args...)}
}

// invalid is InvalidParameterValue with SQS's wording.
func invalid(format string, args ...any) *Error {
	return newError(errInvalidParameter, "Value for parameter is invalid. Reason: "+format, args...)
}

// missing is MissingParameter for a required parameter.
func missing(name string) *Error {
	return newError(errMissingParameter, "The request must contain the parameter %s.", name)
}

// asError turns any error into the facade's: an *Error as it is, a Spool
// store error to its nearest SQS error (its message kept), anything else
// InternalError.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	wrap := func(c code) *Error { return &Error{c: c, msg: err.Error(), err: err} }
	switch {
	case errors.Is(err, store.ErrNotFound):
		return wrap(errQueueDoesNotExist)
	case errors.Is(err, store.ErrLockLost):
		return wrap(errReceiptHandle)
	case errors.Is(err, store.ErrTooLarge), errors.Is(err, store.ErrInvalid):
		return wrap(errInvalidParameter)
	case errors.Is(err, store.ErrForbidden):
		return wrap(errAccessDenied)
	case errors.Is(err, store.ErrUnauthorized):
		return wrap(errInvalidClientID)
	case errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrStoreFull), errors.Is(err, store.ErrDurability),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return wrap(errServiceUnavailable)
	}
	return wrap(errInternal)
}

// header is the value of x-amzn-query-error.
func (c code) header() string {
	if c.sender {
		return c.query + ";Sender"
	}
	return c.query + ";Receiver"
}

// writeError answers e.
func writeError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Amzn-Query-Error", e.c.header())
	h.Set("X-Amzn-Errortype", e.c.shape)
	w.WriteHeader(e.c.status)
	writeBody(w, errorBody{Type: "com.amazonaws.sqs#" + e.c.shape, Message: e.msg})
}

// errorBody is the JSON of an error answer.
type errorBody struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}
