"""Every RPC of waba-numbers from Python: a runnable example, and the Python client test.

    python example.py --target localhost:50051      (against `waba-numbers --sandbox`)

Stubs come from proto/ with grpcio-tools (see test.sh). The channel uses the recommended
service config (../service-config.json): the reads are retried on UNAVAILABLE, the writes
(Register, AddNumber, VerifyCode...) never.
"""

import argparse
import pathlib
import sys

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

sys.path.insert(0, str(pathlib.Path(__file__).parent / "gen"))
from whatsapp.phonenumbers.v1 import customers_pb2 as cpb  # noqa: E402
from whatsapp.phonenumbers.v1 import customers_pb2_grpc as cpb_grpc  # noqa: E402
from whatsapp.phonenumbers.v1 import phone_numbers_pb2 as pb  # noqa: E402
from whatsapp.phonenumbers.v1 import phone_numbers_pb2_grpc as pb_grpc  # noqa: E402

SERVICE = "whatsapp.phonenumbers.v1.PhoneNumberService"
DEMO_WABA = "102290129340398"
REGISTERED = "106540352242901"  # two-step verification PIN 123456
UNREGISTERED = "106540352242902"  # verified, no PIN yet
NEW_NUMBER = "5550100781"  # +1 555-010-0781, added by this example (each client its own)
SANDBOX_CODE = "424242"  # the one verification code the sandbox sends
# Embedded Signup's hand-off for the sandbox customer "python" (each client its own): the
# sandbox accepts codes es-<customer> and derives the customer's WABA and its 3 numbers
# from the name (src/sandbox/customers.rs); number 3 is verified, not registered, no PIN.
SIGNUP_CODE = "es-python"
CUSTOMER_WABA = "102801995429072"
CUSTOMER_NUMBER = "106876071560431"


def open_channel(target: str) -> grpc.Channel:
    config = (pathlib.Path(__file__).parent.parent / "service-config.json").read_text()
    options = [("grpc.service_config", config), ("grpc.enable_retries", 1)]
    return grpc.insecure_channel(target, options=options)


def error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    """google.rpc.ErrorInfo from the status details of a failed call."""
    status = rpc_status.from_call(err)
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError(f"no ErrorInfo in {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--waba", default=DEMO_WABA)
    args = parser.parse_args()

    with open_channel(args.target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)

        health = health_pb2_grpc.HealthStub(channel)
        check = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
        assert check.status == health_pb2.HealthCheckResponse.SERVING, check
        print("health:", health_pb2.HealthCheckResponse.ServingStatus.Name(check.status))

        stub = pb_grpc.PhoneNumberServiceStub(channel)

        # Every page: pass next_page_token back until it is empty.
        numbers, token, pages = [], "", 0
        while True:
            request = pb.ListNumbersRequest(waba_id=args.waba, page_size=10, page_token=token)
            page = stub.ListNumbers(request, timeout=15)
            numbers += page.phone_numbers
            pages += 1
            token = page.next_page_token
            if not token:
                break
        print(f"ListNumbers: {len(numbers)} numbers in {pages} pages")
        assert len(numbers) == 34 and pages == 4, (len(numbers), pages)

        number = stub.GetStatus(pb.GetStatusRequest(phone_number_id=UNREGISTERED), timeout=15)
        print("GetStatus:", number.display_phone_number, pb.NameStatus.Name(number.name_status))
        assert number.id == UNREGISTERED

        reply = stub.Register(
            pb.RegisterRequest(phone_number_id=UNREGISTERED, pin="246810", request_id="py-1"),
            timeout=30,
        )
        print("Register:", reply.success)
        assert reply.success

        try:
            stub.Register(pb.RegisterRequest(phone_number_id=REGISTERED, pin="000000"), timeout=30)
            raise AssertionError("a wrong PIN was accepted")
        except grpc.RpcError as err:
            info = error_info(err)
            print("Register with a wrong PIN:", err.code().name, info.reason, dict(info.metadata))
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert info.domain == "graph.facebook.com" and info.metadata["graph_code"] == "133005"
            assert info.metadata["fbtrace_id"]

        # A new number's life: add it, have a code sent, verify it, register it.
        added = stub.AddNumber(
            pb.AddNumberRequest(
                waba_id=args.waba,
                country_code="1",
                phone_number=NEW_NUMBER,
                verified_name="Python Example",
                request_id="py-add-1",
            ),
            timeout=30,
        )
        new_id = added.phone_number_id
        print("AddNumber:", new_id)
        stub.RequestVerificationCode(
            pb.RequestVerificationCodeRequest(phone_number_id=new_id), timeout=30
        )
        try:
            stub.VerifyCode(pb.VerifyCodeRequest(phone_number_id=new_id, code="000000"), timeout=30)
            raise AssertionError("a wrong code was accepted")
        except grpc.RpcError as err:
            info = error_info(err)
            print("VerifyCode with a wrong code:", err.code().name, info.reason)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert info.reason == "VERIFY_CODE_REJECTED", info
        stub.VerifyCode(pb.VerifyCodeRequest(phone_number_id=new_id, code=SANDBOX_CODE), timeout=30)
        reply = stub.Register(
            pb.RegisterRequest(phone_number_id=new_id, pin="135790", request_id="py-2"), timeout=30
        )
        assert reply.success
        number = stub.GetStatus(pb.GetStatusRequest(phone_number_id=new_id), timeout=15)
        platform = pb.PlatformType.Name(number.platform_type)
        left = number.register_budget.attempts_left
        print("GetStatus:", number.display_phone_number, platform, f"({left} attempts left)")
        assert number.code_verification_status == pb.VERIFICATION_STATUS_VERIFIED, number
        assert number.platform_type == pb.PLATFORM_TYPE_CLOUD_API, number

        # The demo WABA's 34 numbers and the one added.
        events = stub.WatchStatus(pb.WatchStatusRequest(waba_id=args.waba), timeout=30)
        first = [next(events) for _ in range(35)]
        events.cancel()
        assert all(e.source == pb.EVENT_SOURCE_INITIAL for e in first)
        print(f"WatchStatus: {len(first)} initial snapshots")

        # A customer finished Embedded Signup: the backend onboards it with what the
        # frontend sent (code, WABA id, the number to register and its PIN) and a
        # request_id it keeps. Here the first try names a number of another WABA: the
        # register step fails, with the cause's ErrorInfo naming the step.
        customers = cpb_grpc.CustomerServiceStub(channel)
        onboarding = cpb.OnboardCustomerRequest(
            code=SIGNUP_CODE,
            waba_id=CUSTOMER_WABA,
            phone_number_id=REGISTERED,
            pin="112233",
            request_id="py-onboard-1",
        )
        try:
            customers.OnboardCustomer(onboarding, timeout=30)
            raise AssertionError("a number of another WABA was registered")
        except grpc.RpcError as err:
            info = error_info(err)
            print(
                "OnboardCustomer, a number not in the WABA:",
                err.code().name,
                info.reason,
                dict(info.metadata),
            )
            assert err.code() == grpc.StatusCode.NOT_FOUND, err
            assert info.reason == "PHONE_NUMBER_NOT_IN_WABA", info
            assert info.metadata["onboarding_step"] == "register_number", info
        customer = customers.GetCustomer(cpb.GetCustomerRequest(waba_id=CUSTOMER_WABA), timeout=15)
        failed = [p for p in customer.steps if p.state == cpb.STEP_STATE_FAILED]
        assert [p.step for p in failed] == [cpb.ONBOARDING_STEP_REGISTER_NUMBER], customer
        assert failed[0].error.code == grpc.StatusCode.NOT_FOUND.value[0], failed
        print("GetCustomer: REGISTER_NUMBER failed:", failed[0].error.message)

        # The retry, with the right number and the same request_id, resumes at that step:
        # the one-time code is not sent again (a second exchange would fail: it works once).
        onboarding.phone_number_id = CUSTOMER_NUMBER
        customer = customers.OnboardCustomer(onboarding, timeout=30)
        print("OnboardCustomer:", customer.waba_id, cpb.TokenState.Name(customer.token_state))
        for progress in customer.steps:
            print(" ", cpb.OnboardingStep.Name(progress.step), cpb.StepState.Name(progress.state))
        assert customer.token_state == cpb.TOKEN_STATE_ACTIVE, customer
        assert all(p.state == cpb.STEP_STATE_DONE for p in customer.steps), customer
        assert CUSTOMER_NUMBER in customer.phone_number_ids, customer

        # The customer's WABA, read with its own business token.
        page = stub.ListNumbers(pb.ListNumbersRequest(waba_id=CUSTOMER_WABA), timeout=15)
        for number in page.phone_numbers:
            platform = pb.PlatformType.Name(number.platform_type)
            print(" ", number.id, number.display_phone_number, platform)
        assert len(page.phone_numbers) == 3, page
        registered = [n for n in page.phone_numbers if n.id == CUSTOMER_NUMBER]
        assert registered[0].platform_type == pb.PLATFORM_TYPE_CLOUD_API, registered
        print(f"ListNumbers of the customer's WABA: {len(page.phone_numbers)} numbers")

    print("python client: every call behaved as expected")


if __name__ == "__main__":
    main()
