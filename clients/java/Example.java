// Every RPC of waba-numbers from Java (grpc-java): a runnable example, and the Java client test.
//
//   java -cp ... Example localhost:50051
//
// Stubs come from proto/ with protoc and the grpc-java plugin (see test.sh); ErrorInfo is
// read from the status details with io.grpc.protobuf.StatusProto.

import com.google.protobuf.Any;
import com.google.rpc.ErrorInfo;
import com.wabanumbers.whatsapp.phonenumbers.v1.AddNumberRequest;
import com.wabanumbers.whatsapp.phonenumbers.v1.Customer;
import com.wabanumbers.whatsapp.phonenumbers.v1.CustomerServiceGrpc;
import com.wabanumbers.whatsapp.phonenumbers.v1.EventSource;
import com.wabanumbers.whatsapp.phonenumbers.v1.GetCustomerRequest;
import com.wabanumbers.whatsapp.phonenumbers.v1.GetStatusRequest;
import com.wabanumbers.whatsapp.phonenumbers.v1.ListNumbersRequest;
import com.wabanumbers.whatsapp.phonenumbers.v1.ListNumbersResponse;
import com.wabanumbers.whatsapp.phonenumbers.v1.OnboardCustomerRequest;
import com.wabanumbers.whatsapp.phonenumbers.v1.OnboardingStep;
import com.wabanumbers.whatsapp.phonenumbers.v1.PhoneNumber;
import com.wabanumbers.whatsapp.phonenumbers.v1.PhoneNumberServiceGrpc;
import com.wabanumbers.whatsapp.phonenumbers.v1.PlatformType;
import com.wabanumbers.whatsapp.phonenumbers.v1.RegisterRequest;
import com.wabanumbers.whatsapp.phonenumbers.v1.RegisterResponse;
import com.wabanumbers.whatsapp.phonenumbers.v1.RequestVerificationCodeRequest;
import com.wabanumbers.whatsapp.phonenumbers.v1.StatusEvent;
import com.wabanumbers.whatsapp.phonenumbers.v1.StepProgress;
import com.wabanumbers.whatsapp.phonenumbers.v1.StepState;
import com.wabanumbers.whatsapp.phonenumbers.v1.TokenState;
import com.wabanumbers.whatsapp.phonenumbers.v1.VerificationStatus;
import com.wabanumbers.whatsapp.phonenumbers.v1.VerifyCodeRequest;
import com.wabanumbers.whatsapp.phonenumbers.v1.WatchStatusRequest;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.protobuf.StatusProto;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;

public final class Example {
  static final String SERVICE = "whatsapp.phonenumbers.v1.PhoneNumberService";
  static final String DEMO_WABA = "102290129340398";
  static final String REGISTERED = "106540352242901"; // two-step verification PIN 123456
  static final String UNREGISTERED = "106540352242902"; // verified, no PIN yet
  static final String NEW_NUMBER = "5550100783"; // +1 555-010-0783, added by this example (each client its own)
  static final String SANDBOX_CODE = "424242"; // the one verification code the sandbox sends
  // Embedded Signup's hand-off for the sandbox customer "java" (each client its own): the
  // sandbox accepts codes es-<customer> and derives the customer's WABA and its 3 numbers
  // from the name (src/sandbox/customers.rs); number 3 is verified, not registered, no PIN.
  static final String SIGNUP_CODE = "es-java";
  static final String CUSTOMER_WABA = "102375242593715";
  static final String CUSTOMER_NUMBER = "106529740852699";

  public static void main(String[] args) throws Exception {
    String target = args.length > 0 ? args[0] : "localhost:50051";
    ManagedChannel channel = ManagedChannelBuilder.forTarget(target).usePlaintext().build();
    try {
      HealthCheckResponse health = HealthGrpc.newBlockingStub(channel)
          .withDeadlineAfter(10, TimeUnit.SECONDS)
          .check(HealthCheckRequest.newBuilder().setService(SERVICE).build());
      expect(health.getStatus() == HealthCheckResponse.ServingStatus.SERVING, "health " + health);
      System.out.println("health: " + health.getStatus());

      PhoneNumberServiceGrpc.PhoneNumberServiceBlockingStub numbers =
          PhoneNumberServiceGrpc.newBlockingStub(channel);

      // Every page: pass next_page_token back until it is empty.
      List<PhoneNumber> all = new ArrayList<>();
      String token = "";
      int pages = 0;
      do {
        ListNumbersResponse page = numbers.withDeadlineAfter(15, TimeUnit.SECONDS).listNumbers(
            ListNumbersRequest.newBuilder().setWabaId(DEMO_WABA).setPageSize(10).setPageToken(token).build());
        all.addAll(page.getPhoneNumbersList());
        pages++;
        token = page.getNextPageToken();
      } while (!token.isEmpty());
      expect(all.size() == 34 && pages == 4, all.size() + " numbers in " + pages + " pages");
      System.out.println("ListNumbers: " + all.size() + " numbers in " + pages + " pages");

      PhoneNumber number = numbers.withDeadlineAfter(15, TimeUnit.SECONDS)
          .getStatus(GetStatusRequest.newBuilder().setPhoneNumberId(UNREGISTERED).build());
      expect(number.getId().equals(UNREGISTERED), "GetStatus returned " + number.getId());
      System.out.println("GetStatus: " + number.getDisplayPhoneNumber() + " " + number.getNameStatus());

      RegisterResponse reply = numbers.withDeadlineAfter(30, TimeUnit.SECONDS).register(RegisterRequest.newBuilder()
          .setPhoneNumberId(UNREGISTERED).setPin("246810").setRequestId("java-1").build());
      expect(reply.getSuccess(), "Register did not succeed");
      System.out.println("Register: " + reply.getSuccess());

      try {
        numbers.withDeadlineAfter(30, TimeUnit.SECONDS).register(
            RegisterRequest.newBuilder().setPhoneNumberId(REGISTERED).setPin("000000").build());
        throw new AssertionError("a wrong PIN was accepted");
      } catch (StatusRuntimeException e) {
        expect(e.getStatus().getCode() == Status.Code.INVALID_ARGUMENT, "a wrong PIN gave " + e.getStatus());
        ErrorInfo info = errorInfo(e);
        expect(info != null && info.getDomain().equals("graph.facebook.com")
            && "133005".equals(info.getMetadataMap().get("graph_code")), "no ErrorInfo with graph_code 133005");
        System.out.println("Register with a wrong PIN: " + e.getStatus().getCode() + " " + info.getReason()
            + " " + info.getMetadataMap());
      }

      // A new number's life: add it, have a code sent, verify it, register it.
      String newId = numbers.withDeadlineAfter(30, TimeUnit.SECONDS).addNumber(AddNumberRequest.newBuilder()
          .setWabaId(DEMO_WABA).setCountryCode("1").setPhoneNumber(NEW_NUMBER).setVerifiedName("Java Example")
          .setRequestId("java-add-1").build()).getPhoneNumberId();
      System.out.println("AddNumber: " + newId);
      numbers.withDeadlineAfter(30, TimeUnit.SECONDS).requestVerificationCode(
          RequestVerificationCodeRequest.newBuilder().setPhoneNumberId(newId).build());
      try {
        numbers.withDeadlineAfter(30, TimeUnit.SECONDS).verifyCode(
            VerifyCodeRequest.newBuilder().setPhoneNumberId(newId).setCode("000000").build());
        throw new AssertionError("a wrong code was accepted");
      } catch (StatusRuntimeException e) {
        ErrorInfo info = errorInfo(e);
        expect(e.getStatus().getCode() == Status.Code.INVALID_ARGUMENT && info != null
            && info.getReason().equals("VERIFY_CODE_REJECTED"), "a wrong code gave " + e.getStatus());
        System.out.println("VerifyCode with a wrong code: " + e.getStatus().getCode() + " " + info.getReason());
      }
      numbers.withDeadlineAfter(30, TimeUnit.SECONDS).verifyCode(
          VerifyCodeRequest.newBuilder().setPhoneNumberId(newId).setCode(SANDBOX_CODE).build());
      reply = numbers.withDeadlineAfter(30, TimeUnit.SECONDS).register(RegisterRequest.newBuilder()
          .setPhoneNumberId(newId).setPin("135790").setRequestId("java-2").build());
      expect(reply.getSuccess(), "Register did not succeed");
      number = numbers.withDeadlineAfter(15, TimeUnit.SECONDS)
          .getStatus(GetStatusRequest.newBuilder().setPhoneNumberId(newId).build());
      expect(number.getCodeVerificationStatus() == VerificationStatus.VERIFICATION_STATUS_VERIFIED
          && number.getPlatformType() == PlatformType.PLATFORM_TYPE_CLOUD_API, "the new number is " + number);
      System.out.println("GetStatus: " + number.getDisplayPhoneNumber() + " " + number.getPlatformType()
          + " (" + number.getRegisterBudget().getAttemptsLeft() + " attempts left)");

      // The demo WABA's 34 numbers and the one added.
      Context.CancellableContext watching = Context.current().withCancellation();
      watching.run(() -> {
        Iterator<StatusEvent> events = numbers.withDeadlineAfter(30, TimeUnit.SECONDS).watchStatus(
            WatchStatusRequest.newBuilder().setWabaId(DEMO_WABA).build());
        for (int i = 0; i < 35; i++) {
          StatusEvent event = events.next();
          expect(event.getSource() == EventSource.EVENT_SOURCE_INITIAL, "event " + i + " is " + event.getSource());
        }
      });
      watching.cancel(null);
      System.out.println("WatchStatus: 35 initial snapshots");

      // A customer finished Embedded Signup: the backend onboards it with what the frontend
      // sent (code, WABA id, the number to register and its PIN) and a request_id it keeps.
      // Here the first try names a number of another WABA: the register step fails, with
      // the cause's ErrorInfo naming the step.
      CustomerServiceGrpc.CustomerServiceBlockingStub customers = CustomerServiceGrpc.newBlockingStub(channel);
      OnboardCustomerRequest onboarding = OnboardCustomerRequest.newBuilder().setCode(SIGNUP_CODE)
          .setWabaId(CUSTOMER_WABA).setPhoneNumberId(REGISTERED).setPin("112233")
          .setRequestId("java-onboard-1").build();
      try {
        customers.withDeadlineAfter(30, TimeUnit.SECONDS).onboardCustomer(onboarding);
        throw new AssertionError("a number of another WABA was registered");
      } catch (StatusRuntimeException e) {
        ErrorInfo info = errorInfo(e);
        expect(e.getStatus().getCode() == Status.Code.NOT_FOUND && info != null
            && info.getReason().equals("PHONE_NUMBER_NOT_IN_WABA")
            && "register_number".equals(info.getMetadataMap().get("onboarding_step")),
            "a number not in the WABA gave " + e.getStatus());
        System.out.println("OnboardCustomer, a number not in the WABA: " + e.getStatus().getCode() + " "
            + info.getReason() + " " + info.getMetadataMap());
      }
      Customer customer = customers.withDeadlineAfter(15, TimeUnit.SECONDS)
          .getCustomer(GetCustomerRequest.newBuilder().setWabaId(CUSTOMER_WABA).build());
      StepProgress last = customer.getSteps(customer.getStepsCount() - 1);
      expect(last.getStep() == OnboardingStep.ONBOARDING_STEP_REGISTER_NUMBER
          && last.getState() == StepState.STEP_STATE_FAILED
          && last.getError().getCode() == Status.Code.NOT_FOUND.value(), "the register step is " + last);
      System.out.println("GetCustomer: REGISTER_NUMBER failed: " + last.getError().getMessage());

      // The retry, with the right number and the same request_id, resumes at that step: the
      // one-time code is not sent again (a second exchange would fail: it works once).
      customer = customers.withDeadlineAfter(30, TimeUnit.SECONDS).onboardCustomer(
          onboarding.toBuilder().setPhoneNumberId(CUSTOMER_NUMBER).build());
      System.out.println("OnboardCustomer: " + customer.getWabaId() + " " + customer.getTokenState());
      for (StepProgress progress : customer.getStepsList()) {
        System.out.println("  " + progress.getStep() + " " + progress.getState());
        expect(progress.getState() == StepState.STEP_STATE_DONE, "step " + progress.getStep() + " is "
            + progress.getState());
      }
      expect(customer.getTokenState() == TokenState.TOKEN_STATE_ACTIVE, "the customer is " + customer);

      // The customer's WABA, read with its own business token.
      ListNumbersResponse page = numbers.withDeadlineAfter(15, TimeUnit.SECONDS).listNumbers(
          ListNumbersRequest.newBuilder().setWabaId(CUSTOMER_WABA).build());
      boolean registeredNow = false;
      for (PhoneNumber n : page.getPhoneNumbersList()) {
        System.out.println("  " + n.getId() + " " + n.getDisplayPhoneNumber() + " " + n.getPlatformType());
        registeredNow |= n.getId().equals(CUSTOMER_NUMBER)
            && n.getPlatformType() == PlatformType.PLATFORM_TYPE_CLOUD_API;
      }
      expect(page.getPhoneNumbersCount() == 3 && registeredNow, "the customer's WABA holds " + page);
      System.out.println("ListNumbers of the customer's WABA: " + page.getPhoneNumbersCount() + " numbers");
      System.out.println("java client: every call behaved as expected");
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /** The google.rpc.ErrorInfo among the status details of a failed call, or null. */
  static ErrorInfo errorInfo(StatusRuntimeException e) throws Exception {
    for (Any detail : StatusProto.fromThrowable(e).getDetailsList()) {
      if (detail.is(ErrorInfo.class)) {
        return detail.unpack(ErrorInfo.class);
      }
    }
    return null;
  }

  static void expect(boolean ok, String message) {
    if (!ok) {
      throw new AssertionError(message);
    }
  }
}
