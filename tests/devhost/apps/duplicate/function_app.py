import azure.functions as func

app = func.FunctionApp()


@app.route(route="a")
@app.function_name("same")
def first(req: func.HttpRequest) -> str:
    return "a"


@app.route(route="b")
@app.function_name("same")
def second(req: func.HttpRequest) -> str:
    return "b"
