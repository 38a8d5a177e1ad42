// Command example calls every RPC of waba-numbers from Go: a runnable example, and the Go
// client test.
//
//	example -target localhost:50051 -service-config ../service-config.json
//
// Stubs come from proto/ with protoc-gen-go and protoc-gen-go-grpc (see test.sh). The
// recommended service config retries the reads on UNAVAILABLE, never the writes such as
// Register, AddNumber or VerifyCode (grpc-go before 1.40 applies retries only with
// GRPC_GO_RETRY=on).
package main

import (
	"context"
	"flag"
	"io/ioutil"
	"log"
	"time"

	pb "github.com/waba-numbers/waba-numbers/gen/go/whatsapp/phonenumbers/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

const (
	service      = "whatsapp.phonenumbers.v1.PhoneNumberService"
	registered   = "106540352242901" // two-step verification PIN 123456
	unregistered = "106540352242902" // verified, no PIN yet
	newNumber    = "5550100782"      // +1 555-010-0782, added by this example (each client its own)
	sandboxCode  = "424242"          // the one verification code the sandbox sends

	// Embedded Signup's hand-off for the sandbox customer "go" (each client its own): the
	// sandbox accepts codes es-<customer> and derives the customer's WABA and its 3
	// numbers from the name (src/sandbox/customers.rs); number 3 is verified, not
	// registered, no PIN.
	signupCode     = "es-go"
	customerWaba   = "102246068869013"
	customerNumber = "106160129990369"
)

func main() {
	target := flag.String("target", "localhost:50051", "gRPC address of waba-numbers")
	waba := flag.String("waba", "102290129340398", "WABA id (the sandbox's demo WABA)")
	configPath := flag.String("service-config", "clients/service-config.json", "gRPC service config")
	flag.Parse()

	config, err := ioutil.ReadFile(*configPath)
	check(err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dialCtx, dialCancel := context.WithTimeout(ctx, 10*time.Second)
	defer dialCancel()
	conn, err := grpc.DialContext(dialCtx, *target, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithDefaultServiceConfig(string(config)))
	check(err)
	defer conn.Close()

	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	check(err)
	expect(health.Status == healthpb.HealthCheckResponse_SERVING, "health is %v", health.Status)
	log.Printf("health: %v", health.Status)

	client := pb.NewPhoneNumberServiceClient(conn)

	// Every page: pass next_page_token back until it is empty.
	var numbers []*pb.PhoneNumber
	token, pages := "", 0
	for {
		page, err := client.ListNumbers(ctx, &pb.ListNumbersRequest{WabaId: *waba, PageSize: 10, PageToken: token})
		check(err)
		numbers = append(numbers, page.PhoneNumbers...)
		pages++
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	expect(len(numbers) == 34 && pages == 4, "%d numbers in %d pages", len(numbers), pages)
	log.Printf("ListNumbers: %d numbers in %d pages", len(numbers), pages)

	number, err := client.GetStatus(ctx, &pb.GetStatusRequest{PhoneNumberId: unregistered})
	check(err)
	expect(number.Id == unregistered, "GetStatus returned %s", number.Id)
	log.Printf("GetStatus: %s %v", number.DisplayPhoneNumber, number.NameStatus)

	reply, err := client.Register(ctx, &pb.RegisterRequest{PhoneNumberId: unregistered, Pin: "246810", RequestId: "go-1"})
	check(err)
	expect(reply.Success, "Register did not succeed")
	log.Printf("Register: %v", reply.Success)

	_, err = client.Register(ctx, &pb.RegisterRequest{PhoneNumberId: registered, Pin: "000000"})
	st := status.Convert(err)
	expect(st.Code() == codes.InvalidArgument, "a wrong PIN gave %v", st.Code())
	info := errorInfo(st)
	expect(info != nil && info.Domain == "graph.facebook.com" && info.Metadata["graph_code"] == "133005",
		"no ErrorInfo with graph_code 133005 in %v", st.Details())
	log.Printf("Register with a wrong PIN: %v %s %v", st.Code(), info.Reason, info.Metadata)

	// A new number's life: add it, have a code sent, verify it, register it.
	added, err := client.AddNumber(ctx, &pb.AddNumberRequest{
		WabaId: *waba, CountryCode: "1", PhoneNumber: newNumber, VerifiedName: "Go Example", RequestId: "go-add-1"})
	check(err)
	newID := added.PhoneNumberId
	log.Printf("AddNumber: %s", newID)
	_, err = client.RequestVerificationCode(ctx, &pb.RequestVerificationCodeRequest{PhoneNumberId: newID})
	check(err)
	_, err = client.VerifyCode(ctx, &pb.VerifyCodeRequest{PhoneNumberId: newID, Code: "000000"})
	st = status.Convert(err)
	info = errorInfo(st)
	expect(st.Code() == codes.InvalidArgument && info != nil && info.Reason == "VERIFY_CODE_REJECTED",
		"a wrong code gave %v %v", st.Code(), st.Details())
	log.Printf("VerifyCode with a wrong code: %v %s", st.Code(), info.Reason)
	_, err = client.VerifyCode(ctx, &pb.VerifyCodeRequest{PhoneNumberId: newID, Code: sandboxCode})
	check(err)
	reply, err = client.Register(ctx, &pb.RegisterRequest{PhoneNumberId: newID, Pin: "135790", RequestId: "go-2"})
	check(err)
	expect(reply.Success, "Register did not succeed")
	number, err = client.GetStatus(ctx, &pb.GetStatusRequest{PhoneNumberId: newID})
	check(err)
	expect(number.CodeVerificationStatus == pb.VerificationStatus_VERIFICATION_STATUS_VERIFIED &&
		number.PlatformType == pb.PlatformType_PLATFORM_TYPE_CLOUD_API, "the new number is %v", number)
	log.Printf("GetStatus: %s %v (%d attempts left)", number.DisplayPhoneNumber, number.PlatformType,
		number.RegisterBudget.GetAttemptsLeft())

	// The demo WABA's 34 numbers and the one added.
	watchCtx, stopWatching := context.WithCancel(ctx)
	events, err := client.WatchStatus(watchCtx, &pb.WatchStatusRequest{WabaId: *waba})
	check(err)
	for i := 0; i < 35; i++ {
		event, err := events.Recv()
		check(err)
		expect(event.Source == pb.EventSource_EVENT_SOURCE_INITIAL, "event %d is %v", i, event.Source)
	}
	stopWatching()
	log.Printf("WatchStatus: 35 initial snapshots")

	// A customer finished Embedded Signup: the backend onboards it with what the frontend
	// sent (code, WABA id, the number to register and its PIN) and a request_id it keeps.
	// Here the first try names a number of another WABA: the register step fails, with
	// the cause's ErrorInfo naming the step.
	customers := pb.NewCustomerServiceClient(conn)
	onboarding := &pb.OnboardCustomerRequest{Code: signupCode, WabaId: customerWaba,
		PhoneNumberId: registered, Pin: "112233", RequestId: "go-onboard-1"}
	_, err = customers.OnboardCustomer(ctx, onboarding)
	st = status.Convert(err)
	info = errorInfo(st)
	expect(st.Code() == codes.NotFound && info != nil && info.Reason == "PHONE_NUMBER_NOT_IN_WABA" &&
		info.Metadata["onboarding_step"] == "register_number", "a number not in the WABA gave %v %v", st.Code(), st.Details())
	log.Printf("OnboardCustomer, a number not in the WABA: %v %s %v", st.Code(), info.Reason, info.Metadata)
	customer, err := customers.GetCustomer(ctx, &pb.GetCustomerRequest{WabaId: customerWaba})
	check(err)
	last := customer.Steps[len(customer.Steps)-1]
	expect(last.Step == pb.OnboardingStep_ONBOARDING_STEP_REGISTER_NUMBER &&
		last.State == pb.StepState_STEP_STATE_FAILED && codes.Code(last.Error.GetCode()) == codes.NotFound,
		"the register step is %v", last)
	log.Printf("GetCustomer: REGISTER_NUMBER failed: %s", last.Error.GetMessage())

	// The retry, with the right number and the same request_id, resumes at that step: the
	// one-time code is not sent again (a second exchange would fail: it works once).
	onboarding.PhoneNumberId = customerNumber
	customer, err = customers.OnboardCustomer(ctx, onboarding)
	check(err)
	log.Printf("OnboardCustomer: %s %v", customer.WabaId, customer.TokenState)
	for _, progress := range customer.Steps {
		log.Printf("  %v %v", progress.Step, progress.State)
		expect(progress.State == pb.StepState_STEP_STATE_DONE, "step %v is %v", progress.Step, progress.State)
	}
	expect(customer.TokenState == pb.TokenState_TOKEN_STATE_ACTIVE, "the customer is %v", customer)

	// The customer's WABA, read with its own business token.
	page, err := client.ListNumbers(ctx, &pb.ListNumbersRequest{WabaId: customerWaba})
	check(err)
	registeredNow := false
	for _, n := range page.PhoneNumbers {
		log.Printf("  %s %s %v", n.Id, n.DisplayPhoneNumber, n.PlatformType)
		registeredNow = registeredNow || (n.Id == customerNumber && n.PlatformType == pb.PlatformType_PLATFORM_TYPE_CLOUD_API)
	}
	expect(len(page.PhoneNumbers) == 3 && registeredNow, "the customer's WABA holds %v", page.PhoneNumbers)
	log.Printf("ListNumbers of the customer's WABA: %d numbers", len(page.PhoneNumbers))
	log.Printf("go client: every call behaved as expected")
}

// errorInfo returns the google.rpc.ErrorInfo among the status details, or nil.
func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func expect(ok bool, format string, args ...interface{}) {
	if !ok {
		log.Fatalf(format, args...)
	}
}
