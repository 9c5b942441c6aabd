import subprocess
import sys


def test_core_imports_no_cli_libraries():
    code = (
        "import mlcv_cli.core, mlcv_cli.core.knn, mlcv_cli.core.losses, mlcv_cli.core.optim, "
        "mlcv_cli.core.linear, mlcv_cli.core.gradcheck, mlcv_cli.core.metrics, "
        "mlcv_cli.core.model_selection, mlcv_cli.core.mlp, mlcv_cli.core.training, mlcv_cli.core.validation; import sys; "
        "bad = [m for m in ('click', 'yaml', 'rich', 'tqdm', 'PIL', 'sklearn', 'matplotlib') if m in sys.modules]; "
        "bad += [m for m in sys.modules if m.startswith('mlcv_cli.') and not m.startswith('mlcv_cli.core')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
